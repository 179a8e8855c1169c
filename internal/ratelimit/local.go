package ratelimit

import (
	"context"
	"hash/maphash"
	"maps"
	"sync"
	"time"
)

const (
	// localShards spreads keys over independently locked maps so that
	// concurrent calls for different tenants rarely wait for each other.
	localShards = 64
	// sweepInterval is how often a shard drops the keys whose bucket has
	// refilled. Such a key is indistinguishable from one never seen, so
	// dropping it changes no decision; it only bounds memory to the keys
	// active within their reset window plus this interval.
	sweepInterval = 10 * time.Second
	// shrinkMin is the size from which a sweep that empties most of a map
	// reallocates it: Go maps never give back buckets on delete, so a burst
	// of one-off keys would otherwise pin their memory for good.
	shrinkMin = 1024
)

// Local is an in-process GCRA limiter with the same semantics as [Redis]
// (the redis_rate Lua script), for a single replica, for development
// without Redis, and as the fallback of [Failover]. Each replica has its own
// state, so N replicas together allow up to N times the limit.
//
// It stores one theoretical arrival time (TAT) per key: the time at which
// the key's bucket would be empty again if no more requests came. A call
// costing c is allowed when now >= TAT + c*T - Burst*T, where T is
// Period/Rate, and then moves TAT forward by c*T.
type Local struct {
	clock  func() time.Duration // monotonic time since NewLocal; replaced in tests
	seed   maphash.Seed
	shards [localShards]localShard
}

type localShard struct {
	mu        sync.Mutex
	tat       map[string]time.Duration // theoretical arrival time per key, on Local.clock
	high      int                      // largest len(tat) since the map was last allocated
	nextSweep time.Duration
}

// NewLocal returns an empty in-process limiter. It starts no goroutine:
// idle keys are swept by the calls themselves.
func NewLocal() *Local {
	start := time.Now()
	l := &Local{
		clock: func() time.Duration { return time.Since(start) }, // monotonic: wall-clock jumps don't refill buckets
		seed:  maphash.MakeSeed(),
	}
	for i := range l.shards {
		l.shards[i].tat = make(map[string]time.Duration)
	}
	return l
}

// Allow implements [Limiter]. It never blocks on anything but other calls
// for keys of the same shard, and returns an error only for an invalid limit
// or cost (wrapping ErrInvalidLimit).
func (l *Local) Allow(_ context.Context, key string, lim Limit, cost int) (Result, error) {
	if err := validate(lim, cost); err != nil {
		return Result{}, err
	}
	interval := float64(lim.Period) / float64(lim.Rate) // emission interval T, in ns
	increment := time.Duration(interval * float64(cost))
	burstOffset := time.Duration(interval * float64(lim.Burst))

	s := &l.shards[maphash.String(l.seed, key)%localShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	// Reading the clock under the lock keeps each key's "now" monotonic
	// across goroutines, as Redis's TIME is inside its single thread.
	now := l.clock()
	s.sweep(now)

	tat, ok := s.tat[key]
	if !ok || tat < now {
		tat = now
	}
	newTAT := tat + increment
	diff := now - (newTAT - burstOffset)
	if diff < 0 {
		return Result{Limit: lim, RetryAfter: -diff, ResetAfter: tat - now}, nil
	}
	s.tat[key] = newTAT
	s.high = max(s.high, len(s.tat))
	return Result{
		Allowed:    true,
		Limit:      lim,
		Remaining:  remaining(diff, interval),
		ResetAfter: newTAT - now,
	}, nil
}

// Seed sets key's state to what another limiter (Redis) last answered:
// its bucket is resetAfter short of full, so its theoretical arrival time
// is now + resetAfter. Failover seeds Local with every Redis answer, so
// that a call Local must answer continues from the shared state instead
// of from a full bucket. A zero or negative resetAfter (a full bucket)
// forgets the key, which is the same.
func (l *Local) Seed(key string, resetAfter time.Duration) {
	s := &l.shards[maphash.String(l.seed, key)%localShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	now := l.clock()
	s.sweep(now)
	if resetAfter <= 0 {
		delete(s.tat, key)
		return
	}
	s.tat[key] = now + resetAfter
	s.high = max(s.high, len(s.tat))
}

// sweep drops the keys whose bucket is full again, at most once per
// sweepInterval. It runs inside a caller's critical section: the cost is
// one pass over this shard's keys every ten seconds.
func (s *localShard) sweep(now time.Duration) {
	if now < s.nextSweep {
		return
	}
	s.nextSweep = now + sweepInterval
	for k, tat := range s.tat {
		if tat <= now {
			delete(s.tat, k)
		}
	}
	if s.high >= shrinkMin && len(s.tat) < s.high/4 {
		// Not maps.Clone: it copies the table as it is, capacity included.
		m := make(map[string]time.Duration, len(s.tat))
		maps.Copy(m, s.tat)
		s.tat, s.high = m, len(m)
	}
}

// size is the number of keys held, for tests of eviction.
func (l *Local) size() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.tat)
		s.mu.Unlock()
	}
	return n
}
