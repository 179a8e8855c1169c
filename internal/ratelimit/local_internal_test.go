package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// newTestLocal returns a Local whose clock is *now, set by the test.
func newTestLocal(now *time.Duration) *Local {
	l := NewLocal()
	l.clock = func() time.Duration { return *now }
	return l
}

func TestLocalGCRA(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	lim := Limit{Rate: 10, Period: time.Second, Burst: 3} // one request per 100ms, three at once
	steps := []struct {
		at   time.Duration
		cost int
		want Result
	}{
		// A new key has a full burst.
		{0, 1, Result{Allowed: true, Remaining: 2, ResetAfter: 100 * ms}},
		{0, 1, Result{Allowed: true, Remaining: 1, ResetAfter: 200 * ms}},
		{0, 1, Result{Allowed: true, Remaining: 0, ResetAfter: 300 * ms}},
		// Empty: the next request is one emission interval away.
		{0, 1, Result{RetryAfter: 100 * ms, ResetAfter: 300 * ms}},
		// One interval later exactly one more is allowed.
		{100 * ms, 1, Result{Allowed: true, Remaining: 0, ResetAfter: 300 * ms}},
		{150 * ms, 1, Result{RetryAfter: 50 * ms, ResetAfter: 250 * ms}},
		// Long idle: full again, and a call may take the whole burst.
		{time.Second, 3, Result{Allowed: true, Remaining: 0, ResetAfter: 300 * ms}},
		{time.Second, 1, Result{RetryAfter: 100 * ms, ResetAfter: 300 * ms}},
		// A refused call consumes nothing.
		{time.Second + 100*ms, 1, Result{Allowed: true, Remaining: 0, ResetAfter: 300 * ms}},
		// A cost above the burst is never allowed, even when full.
		{2 * time.Second, 4, Result{RetryAfter: 100 * ms}},
		{2 * time.Second, 2, Result{Allowed: true, Remaining: 1, ResetAfter: 200 * ms}},
	}
	var now time.Duration
	l := newTestLocal(&now)
	for i, s := range steps {
		now = s.at
		got, err := l.Allow(context.Background(), "k", lim, s.cost)
		require.NoError(t, err)
		s.want.Limit = lim
		require.Equal(t, s.want, got, "step %d (at %s, cost %d)", i, s.at, s.cost)
	}
}

// TestLocalRemainingExact covers limits whose emission interval is not a
// whole number of nanoseconds: truncation must not make Remaining one short.
func TestLocalRemainingExact(t *testing.T) {
	t.Parallel()
	for _, rate := range []int{3, 7, 9, 11, 13, 100, 1000, 10000} {
		var now time.Duration
		l := newTestLocal(&now)
		lim := PerMinute(rate, 7)
		for want := 6; want >= 0; want-- {
			got, err := l.Allow(context.Background(), "k", lim, 1)
			require.NoError(t, err)
			require.True(t, got.Allowed)
			require.Equal(t, want, got.Remaining, "rate %d/min", rate)
		}
		got, err := l.Allow(context.Background(), "k", lim, 1)
		require.NoError(t, err)
		require.False(t, got.Allowed, "rate %d/min", rate)
	}
}

func TestLocalEvictsIdleKeys(t *testing.T) {
	t.Parallel()
	var now time.Duration
	l := newTestLocal(&now)
	ctx := context.Background()
	short := Limit{Rate: 10, Period: time.Second, Burst: 3} // full again 100ms after one call
	long := PerMinute(1, 1)                                 // full again after a minute

	// Enough one-off keys that each shard grows past shrinkMin.
	const n = 100_000
	for i := range n {
		_, err := l.Allow(ctx, fmt.Sprint("idle-", i), short, 1)
		require.NoError(t, err)
	}
	_, err := l.Allow(ctx, "busy", long, 1)
	require.NoError(t, err)
	require.Equal(t, n+1, l.size())

	// After the sweep interval, calls on every shard drop the idle keys.
	now = sweepInterval + time.Second
	const fresh = 2000 // enough to touch all 64 shards
	for i := range fresh {
		_, err := l.Allow(ctx, fmt.Sprint("new-", i), short, 1)
		require.NoError(t, err)
	}
	require.Equal(t, fresh+1, l.size(), "only the new keys and the not-yet-full one remain")

	// The one still draining kept its state.
	res, err := l.Allow(ctx, "busy", long, 1)
	require.NoError(t, err)
	require.False(t, res.Allowed)

	// Emptied maps were reallocated, so their memory went too.
	for i := range l.shards {
		s := &l.shards[i]
		require.Less(t, s.high, shrinkMin, "shard %d keeps its peak size", i)
	}
}

func TestInvalidLimits(t *testing.T) {
	t.Parallel()
	l := NewLocal()
	for _, c := range []struct {
		lim  Limit
		cost int
	}{
		{Limit{Rate: 0, Period: time.Minute, Burst: 1}, 1},
		{Limit{Rate: 1, Period: 0, Burst: 1}, 1},
		{Limit{Rate: 1, Period: time.Minute, Burst: 0}, 1},
		{PerMinute(1, 1), 0},
		{Limit{Rate: 1, Period: 24 * 365 * time.Hour, Burst: 1000}, 1},
	} {
		_, err := l.Allow(context.Background(), "k", c.lim, c.cost)
		require.True(t, errors.Is(err, ErrInvalidLimit), "%+v cost %d: %v", c.lim, c.cost, err)
	}
}

func TestFailoverDefaults(t *testing.T) {
	t.Parallel()
	f := NewFailover(NewLocal(), NewLocal(), nil)
	require.Equal(t, DefaultFailoverTimeout, f.timeout)
	require.Equal(t, time.Second, f.backoff)
	require.EqualValues(t, DefaultFailoverFailures, f.failures)
	require.NotNil(t, f.seeder, "Local takes over Redis's state")
	require.NotNil(t, f.logger)
	require.False(t, f.direct, "Local does not say it honours deadlines")
}

// TestFailoverWindow: the breaker's window sums the last second only.
func TestFailoverWindow(t *testing.T) {
	t.Parallel()
	var w window
	ms := int64(time.Millisecond)
	for i := range 30 {
		w.add(int64(i)*10*ms, false) // 30 successes over 300ms
	}
	ok, failed := w.add(350*ms, true)
	require.Equal(t, [2]int64{30, 1}, [2]int64{ok, failed})
	ok, failed = w.add(1250*ms, true) // the first 300ms have left the window
	require.Equal(t, [2]int64{0, 2}, [2]int64{ok, failed})
	ok, failed = w.add(5*time.Second.Nanoseconds(), true)
	require.Equal(t, [2]int64{0, 1}, [2]int64{ok, failed})
	w.reset()
	ok, failed = w.add(5*time.Second.Nanoseconds(), true)
	require.Equal(t, [2]int64{0, 1}, [2]int64{ok, failed})
}

// TestFailoverCallsDirectly: a Redis client that honours context deadlines
// is called without the goroutine hand-off; one that doesn't, with it.
func TestFailoverCallsDirectly(t *testing.T) {
	t.Parallel()
	for _, enabled := range []bool{true, false} {
		c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:0", ContextTimeoutEnabled: enabled}) // never dialled
		t.Cleanup(func() { _ = c.Close() })
		f := NewFailover(NewRedis(c), NewLocal(), nil)
		require.Equal(t, enabled, f.direct)
	}
}
