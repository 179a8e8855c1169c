package ratelimit_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/internal/ratelimit"
	"github.com/quarters-dev/quarters/internal/redistest"
)

// limiters returns the two stores under test, each with its own state.
func limiters(t *testing.T) map[string]ratelimit.Limiter {
	t.Helper()
	return map[string]ratelimit.Limiter{
		"redis": ratelimit.NewRedis(redistest.New(t).Client()),
		"local": ratelimit.NewLocal(),
	}
}

// TestLocalMatchesRedis feeds both limiters the same calls at the same
// moments and requires the same decisions, and the same durations to
// within the uncertainty of those moments: Local is the fallback for
// Redis, so switching between them must not change what a tenant sees.
//
// Redis decides by its own clock (TIME, inside the script), which a test
// cannot set; Local's clock it can. Each Local decision is made at the
// midpoint of the Redis call it is compared with, so the two decisions
// are at most half that call apart. Both limiters measure from a key's
// anchoring call (its first, or the first after its bucket refilled), so
// the time each has seen pass differs by at most the longest Redis call
// of the sequence: that is the tolerance for durations, measured, not
// assumed. Decisions must be equal outright, because the schedule keeps
// every call at least 50ms from a refill (or on the same side of it for
// calls made back to back). An attempt in which a Redis call or the
// schedule slipped by more than maxSlip (a stall of a busy machine)
// could land near a refill and cannot show that, so it is run again on
// a fresh key; a slower machine only costs attempts, never a wrong
// verdict.
func TestLocalMatchesRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	redis := ratelimit.NewRedis(redistest.New(t).Client())
	origin := time.Now()
	var localNow time.Duration // since origin; the test's goroutine alone sets and reads it
	local := ratelimit.NewLocalWithClock(func() time.Duration { return localNow })
	// The first call dials and loads the script: not a pair to compare.
	_, err := redis.Allow(ctx, "warmup", ratelimit.PerMinute(1, 1), 1)
	require.NoError(t, err)

	type call struct {
		cost  int
		sleep time.Duration // before the call
	}
	calls := func(n, cost int) []call {
		cs := make([]call, n)
		for i := range cs {
			cs[i].cost = cost
		}
		return cs
	}
	cases := []struct {
		name  string
		limit ratelimit.Limit
		calls []call
	}{
		{"free plan burst", ratelimit.PerMinute(100, 5), calls(8, 1)},
		{"cost 3", ratelimit.Limit{Rate: 10, Period: time.Second, Burst: 10}, calls(5, 3)},
		{"cost above burst", ratelimit.PerMinute(60, 2), calls(2, 3)},
		{"odd interval", ratelimit.PerMinute(7, 3), calls(5, 1)},
		// One request per 100ms; the sleeps land midway between refills.
		{"refill", ratelimit.Limit{Rate: 10, Period: time.Second, Burst: 2}, append(calls(3, 1),
			call{cost: 1, sleep: 150 * time.Millisecond}, call{cost: 1},
			call{cost: 1, sleep: 250 * time.Millisecond}, call{cost: 1}, call{cost: 1})},
	}

	const (
		maxSlip  = 20 * time.Millisecond
		attempts = 10
	)
	type pair struct{ redis, local ratelimit.Result }
	// run makes the calls on key and returns the pairs of results and the
	// longest Redis call, or false if the attempt slipped.
	run := func(key string, limit ratelimit.Limit, calls []call) ([]pair, time.Duration, bool) {
		var (
			pairs   []pair
			longest time.Duration
			first   time.Time     // the first call's midpoint
			planned time.Duration // when this call is due, after first
		)
		for i, call := range calls {
			planned += call.sleep
			if i > 0 {
				// Sleep to the planned time, not for the step, so that a
				// late wake-up does not shift the calls after it.
				time.Sleep(time.Until(first.Add(planned)))
			}
			start := time.Now()
			r, err := redis.Allow(ctx, key, limit, call.cost)
			require.NoError(t, err)
			end := time.Now()
			mid := start.Add(end.Sub(start) / 2)
			if i == 0 {
				first = mid
			}
			localNow = mid.Sub(origin)
			l, err := local.Allow(ctx, key, limit, call.cost)
			require.NoError(t, err)
			longest = max(longest, end.Sub(start))
			if end.Sub(start) > maxSlip || mid.Sub(first)-planned > maxSlip {
				return nil, 0, false
			}
			pairs = append(pairs, pair{r, l})
		}
		return pairs, longest, true
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for attempt := range attempts {
				pairs, longest, ok := run(fmt.Sprintf("match:%s:%d", c.name, attempt), c.limit, c.calls)
				if !ok {
					t.Logf("attempt %d: a call or the schedule slipped by over %s; trying again", attempt, maxSlip)
					continue
				}
				// Plus a millisecond for Redis's float seconds.
				tolerance := longest + time.Millisecond
				for i, p := range pairs {
					want, got := p.redis, p.local
					msg := fmt.Sprintf("call %d: redis %+v, local %+v (tolerance %s)", i, want, got, tolerance)
					require.Equal(t, want.Allowed, got.Allowed, msg)
					require.Equal(t, want.Limit, got.Limit, msg)
					require.Equal(t, want.Remaining, got.Remaining, msg)
					require.InDelta(t, want.RetryAfter, got.RetryAfter, float64(tolerance), msg)
					require.InDelta(t, want.ResetAfter, got.ResetAfter, float64(tolerance), msg)
					if want.Allowed {
						require.Zero(t, got.RetryAfter, msg)
						require.Zero(t, want.RetryAfter, msg)
					} else {
						require.Positive(t, want.RetryAfter, msg)
					}
				}
				return
			}
			t.Fatalf("in %d attempts, a call or the schedule always slipped by over %s: the machine is too busy to compare", attempts, maxSlip)
		})
	}
}

// TestAccuracy hammers one key from many goroutines and requires the
// allowed count to be within 1% of what GCRA allows over the measured
// window: the burst plus rate times the elapsed time. Too many means the
// decisions race; too few means they are lost or misaccounted.
func TestAccuracy(t *testing.T) {
	// Not parallel: the package's API tests (limits_test.go) start real
	// servers, and running beside them would starve the workers of the
	// calls that make the count mean anything. Serial tests finish before
	// any parallel one starts.
	const (
		workers = 16
		window  = 2 * time.Second
		// pause between a worker's calls. Even so the key is asked many
		// times more often than it allows, but the CPUs are not saturated,
		// so the clock readings around each call stay close to it.
		pause = 200 * time.Microsecond
	)
	// About 1,500 in the window. The burst is as large as a second's rate
	// so that a stall of the whole machine (up to a second) is absorbed:
	// GCRA rightly forfeits what accrues beyond a full bucket, and a
	// smaller burst would make a busy machine look like a lossy limiter.
	limit := ratelimit.Limit{Rate: 500, Period: time.Second, Burst: 500}
	for name, l := range limiters(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			var allowed, refused atomic.Int64
			// Each worker records the clock around its first and its last
			// call. The limiter's first decision lies between the earliest
			// start and the earliest end of a first call, its last between
			// the latest start and the latest end of a last call.
			type span struct{ firstStart, firstEnd, lastStart, lastEnd time.Time }
			spans := make([]span, workers)
			var ready, done sync.WaitGroup
			ready.Add(workers)
			startGate := make(chan struct{})
			for w := range workers {
				done.Go(func() {
					// Warm up (for Redis: one pooled connection per worker),
					// so that no dialling happens inside the window.
					_, err := l.Allow(ctx, "accuracy-warmup", limit, 1)
					ready.Done()
					if err != nil {
						t.Error(err)
						return
					}
					<-startGate
					sp := &spans[w]
					for {
						start := time.Now()
						res, err := l.Allow(ctx, "accuracy", limit, 1)
						end := time.Now()
						if err != nil {
							t.Error(err)
							return
						}
						if sp.firstStart.IsZero() {
							sp.firstStart, sp.firstEnd = start, end
						}
						sp.lastStart, sp.lastEnd = start, end
						if res.Allowed {
							allowed.Add(1)
						} else {
							refused.Add(1)
						}
						if end.Sub(sp.firstStart) > window {
							return
						}
						time.Sleep(pause)
					}
				})
			}
			ready.Wait()
			close(startGate)
			done.Wait()
			if t.Failed() {
				return
			}
			firstStart, firstEnd, lastStart, lastEnd := spans[0].firstStart, spans[0].firstEnd, spans[0].lastStart, spans[0].lastEnd
			for _, sp := range spans {
				firstStart, firstEnd = earliest(firstStart, sp.firstStart), earliest(firstEnd, sp.firstEnd)
				lastStart, lastEnd = latest(lastStart, sp.lastStart), latest(lastEnd, sp.lastEnd)
			}
			allowance := func(d time.Duration) float64 {
				return float64(limit.Burst) + float64(limit.Rate)*d.Seconds()/limit.Period.Seconds()
			}
			// On a quiet machine the two bounds are a fraction of a
			// millisecond apart; on a busy one a goroutine may be
			// descheduled between a call and its clock reading, and they
			// widen rather than the test failing for the machine's sake.
			low, high := allowance(lastStart.Sub(firstEnd)), allowance(lastEnd.Sub(firstStart))
			got := float64(allowed.Load())
			t.Logf("%s: allowed %.0f of %d calls in %s; GCRA allows %.1f to %.1f",
				name, got, allowed.Load()+refused.Load(), lastEnd.Sub(firstStart), low, high)
			require.Greater(t, refused.Load(), 5*allowed.Load(), "the key must be far over its limit for the count to mean anything")
			require.GreaterOrEqual(t, got, low*0.99, "fewer than GCRA allows")
			require.LessOrEqual(t, got, high*1.01, "more than GCRA allows")
		})
	}
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// TestNoisyNeighbour requires one key far over its limit to change nothing
// for another key: tenants share the limiter, never an allowance.
func TestNoisyNeighbour(t *testing.T) {
	t.Parallel()
	limit := ratelimit.PerMinute(60, 5)
	for name, l := range limiters(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			var quiet []ratelimit.Result
			for range 7 {
				for range 50 {
					_, err := l.Allow(ctx, "noisy", limit, 1)
					require.NoError(t, err)
				}
				res, err := l.Allow(ctx, "quiet", limit, 1)
				require.NoError(t, err)
				quiet = append(quiet, res)
			}
			for i, want := range []int{4, 3, 2, 1, 0} {
				require.True(t, quiet[i].Allowed, "quiet call %d", i)
				require.Equal(t, want, quiet[i].Remaining, "quiet call %d", i)
			}
			for _, res := range quiet[5:] {
				require.False(t, res.Allowed)
				require.InDelta(t, time.Second, res.RetryAfter, float64(500*time.Millisecond),
					"the quiet key waits one emission interval, not for the noisy one")
			}
			noisy, err := l.Allow(ctx, "noisy", limit, 1)
			require.NoError(t, err)
			require.False(t, noisy.Allowed)
		})
	}
}
