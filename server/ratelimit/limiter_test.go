package ratelimit_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/server/ratelimit"
	"github.com/quarters-dev/quarters/server/redistest"
)

// limiters returns the two stores under test, each with its own state.
func limiters(t *testing.T) map[string]ratelimit.Limiter {
	t.Helper()
	return map[string]ratelimit.Limiter{
		"redis": ratelimit.NewRedis(redistest.New(t).Client()),
		"local": ratelimit.NewLocal(),
	}
}

// TestLocalMatchesRedis feeds both limiters the same calls at (nearly) the
// same moments and requires the same decisions, and the same durations to
// within the time between the two calls: Local is the fallback for Redis,
// so switching between them must not change what a tenant sees.
func TestLocalMatchesRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	redis := ratelimit.NewRedis(redistest.New(t).Client())
	local := ratelimit.NewLocal()

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
		{"refill", ratelimit.Limit{Rate: 20, Period: time.Second, Burst: 2}, append(calls(3, 1),
			call{cost: 1, sleep: 60 * time.Millisecond}, call{cost: 1}, call{cost: 1, sleep: 120 * time.Millisecond}, call{cost: 1}, call{cost: 1})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := "match:" + c.name
			var firstPair time.Duration
			for i, call := range c.calls {
				time.Sleep(call.sleep)
				start := time.Now()
				want, err := redis.Allow(ctx, key, c.limit, call.cost)
				require.NoError(t, err)
				got, err := local.Allow(ctx, key, c.limit, call.cost)
				require.NoError(t, err)
				// The two decisions of a pair are this far apart at most, and
				// the limiters' clocks started with the first pair: their
				// durations may differ by both. Usually well under 1ms; more
				// when the machine is busy.
				pair := time.Since(start)
				if i == 0 {
					firstPair = pair
				}
				tolerance := firstPair + pair + time.Millisecond
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
		})
	}
}

// TestAccuracy hammers one key from many goroutines and requires the
// allowed count to be within 1% of what GCRA allows over the measured
// window: the burst plus rate times the elapsed time. Too many means the
// decisions race; too few means they are lost or misaccounted.
func TestAccuracy(t *testing.T) {
	t.Parallel()
	const (
		workers = 16
		window  = 2 * time.Second
		// pause between a worker's calls. Even so the key is asked a
		// hundred times more often than it allows, but the CPUs are not
		// saturated: on a busy CPU a goroutine can be descheduled between a
		// call and reading the clock for longer than 1% of the window, and
		// the measured window would be wrong, not the limiter.
		pause = 200 * time.Microsecond
	)
	limit := ratelimit.Limit{Rate: 500, Period: time.Second, Burst: 100} // about 1,100 in the window
	for name, l := range limiters(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			var allowed, refused atomic.Int64
			// Each worker records when its first call started and its last
			// one ended; the window runs from the earliest start to the
			// latest end, which brackets the limiter's first and last
			// decisions.
			first := make([]time.Time, workers)
			last := make([]time.Time, workers)
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
					first[w] = time.Now()
					end := first[w].Add(window)
					for {
						res, err := l.Allow(ctx, "accuracy", limit, 1)
						last[w] = time.Now()
						if err != nil {
							t.Error(err)
							return
						}
						if res.Allowed {
							allowed.Add(1)
						} else {
							refused.Add(1)
						}
						if last[w].After(end) {
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
			start, end := first[0], last[0]
			for w := range workers {
				if first[w].Before(start) {
					start = first[w]
				}
				if last[w].After(end) {
					end = last[w]
				}
			}
			elapsed := end.Sub(start)
			want := float64(limit.Burst) + float64(limit.Rate)*elapsed.Seconds()/limit.Period.Seconds()
			got := float64(allowed.Load())
			t.Logf("%s: allowed %.0f of %d calls in %s; GCRA allows %.1f (%+.2f%%)",
				name, got, allowed.Load()+refused.Load(), elapsed, want, 100*(got-want)/want)
			require.Greater(t, refused.Load(), 5*allowed.Load(), "the key must be far over its limit for the count to mean anything")
			require.InEpsilon(t, want, got, 0.01)
		})
	}
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
