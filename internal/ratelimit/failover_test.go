package ratelimit_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/internal/ratelimit"
	"github.com/quarters-dev/quarters/internal/redistest"
)

// logBuffer is a slog destination that tests can read while the code under
// test writes to it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) count(substr string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), substr)
}

func (b *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

const (
	logFailed    = ratelimit.LogBreakerOpen
	logRecovered = ratelimit.LogBreakerClosed
)

// failoverCase is a Failover over a private Redis, with the Redis limiter
// kept for acting on Redis directly.
type failoverCase struct {
	srv   *redistest.Server
	redis *ratelimit.Redis
	f     *ratelimit.Failover
	logs  *logBuffer
}

// clientKinds are the two ways Failover bounds a call to Redis: by the
// context alone when the client honours deadlines, by a goroutine it can
// abandon when it doesn't.
var clientKinds = []struct {
	name            string
	contextTimeouts bool
}{
	{"context-timeouts", true},
	{"default-client", false},
}

func newFailoverCase(t *testing.T, contextTimeouts bool) failoverCase {
	t.Helper()
	// Below the default, so that the outage tests' calls stay quick
	// (each times out at most this, and only until the breaker opens);
	// the breaker keeps a slow moment of a busy machine from opening it.
	return newFailoverCaseTimeout(t, contextTimeouts, 20*time.Millisecond)
}

// newFailoverCaseTimeout is newFailoverCase with the given timeout.
func newFailoverCaseTimeout(t *testing.T, contextTimeouts bool, timeout time.Duration) failoverCase {
	t.Helper()
	srv := redistest.New(t)
	opts := srv.Options()
	opts.ContextTimeoutEnabled = contextTimeouts
	client := goredis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	redis := ratelimit.NewRedis(client)
	logs := &logBuffer{}
	f := ratelimit.NewFailover(redis, ratelimit.NewLocal(), &ratelimit.FailoverOpts{
		Timeout: timeout,
		Backoff: 200 * time.Millisecond,
		Logger:  logs.logger(),
	})
	return failoverCase{srv: srv, redis: redis, f: f, logs: logs}
}

// requireFromRedis shows that f's decisions come from Redis: requests
// consumed on Redis directly are reflected in f's answer for a fresh key,
// which Local, with a full bucket, would not show.
func (c failoverCase) requireFromRedis(t *testing.T, key string) {
	t.Helper()
	ctx := context.Background()
	limit := ratelimit.PerMinute(60, 10)
	for range 3 {
		_, err := c.redis.Allow(ctx, key, limit, 1)
		require.NoError(t, err)
	}
	before := c.f.PrimaryAnswers()
	res, err := c.f.Allow(ctx, key, limit, 1)
	require.NoError(t, err)
	require.Equal(t, before+1, c.f.PrimaryAnswers())
	require.Equal(t, 6, res.Remaining, "10 - 3 consumed on Redis - 1")
}

// callQuickly calls f for a while and requires every call to be allowed
// (each key a fresh local bucket) within 300ms.
func (c failoverCase) callQuickly(t *testing.T, d time.Duration) (calls uint64) {
	t.Helper()
	ctx := context.Background()
	limit := ratelimit.PerMinute(1000, 1000)
	for end := time.Now().Add(d); time.Now().Before(end); {
		start := time.Now()
		res, err := c.f.Allow(ctx, "outage", limit, 1)
		took := time.Since(start)
		require.NoError(t, err)
		require.True(t, res.Allowed)
		// 300ms, not the few ms a call takes: this runs under -race beside
		// other test binaries on two cores. A call that waited for the dead
		// Redis would take 400ms (go-redis's dial retries) to 3s (its read
		// timeout), so the bound still catches that.
		require.Less(t, took, 300*time.Millisecond, "a call must not wait for a dead Redis")
		calls++
		time.Sleep(2 * time.Millisecond)
	}
	return calls
}

func TestFailoverRedisStopped(t *testing.T) {
	t.Parallel()
	for _, kind := range clientKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			testFailoverRedisStopped(t, newFailoverCase(t, kind.contextTimeouts))
		})
	}
}

func testFailoverRedisStopped(t *testing.T, c failoverCase) {
	c.requireFromRedis(t, "before")
	require.Zero(t, c.f.Fallbacks())
	require.False(t, c.f.Degraded())

	c.srv.Stop()
	answers := c.f.PrimaryAnswers()
	// Long enough for several backoffs, so that probes of the dead Redis
	// happen and fail too.
	calls := c.callQuickly(t, time.Second)
	require.Equal(t, calls, c.f.Fallbacks(), "every call is answered by the fallback")
	require.Equal(t, answers, c.f.PrimaryAnswers())
	require.True(t, c.f.Degraded())
	require.Equal(t, 1, c.logs.count(logFailed), "the switch is logged once, not per call or probe")

	c.srv.Start()
	// go-redis redials a pool whose dials failed about once a second.
	require.Eventually(t, func() bool {
		_, err := c.f.Allow(context.Background(), "probe", ratelimit.PerMinute(1000, 1000), 1)
		return err == nil && c.f.PrimaryAnswers() > answers
	}, 10*time.Second, 20*time.Millisecond, "after the backoff, a probe must find Redis back")
	require.False(t, c.f.Degraded())
	c.requireFromRedis(t, "after")
	require.Equal(t, 1, c.logs.count(logRecovered))
	require.Equal(t, 1, c.logs.count(logFailed))
}

// TestFailoverRedisHangs freezes Redis so that commands hang instead of
// failing: the timeout, not an error, must send calls to the fallback.
func TestFailoverRedisHangs(t *testing.T) {
	t.Parallel()
	for _, kind := range clientKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			testFailoverRedisHangs(t, newFailoverCase(t, kind.contextTimeouts))
		})
	}
}

func testFailoverRedisHangs(t *testing.T, c failoverCase) {
	c.requireFromRedis(t, "before")

	c.srv.Pause()
	calls := c.callQuickly(t, 500*time.Millisecond)
	require.Equal(t, calls, c.f.Fallbacks())
	require.Equal(t, 1, c.logs.count(logFailed))
	c.srv.Resume()

	require.Eventually(t, func() bool {
		_, err := c.f.Allow(context.Background(), "probe", ratelimit.PerMinute(1000, 1000), 1)
		return err == nil && !c.f.Degraded()
	}, 10*time.Second, 20*time.Millisecond)
	c.requireFromRedis(t, "after")
}

// TestFailoverCallerCancelled: a caller that gives up is not a Redis
// failure, and must not switch everyone to the fallback.
func TestFailoverCallerCancelled(t *testing.T) {
	t.Parallel()
	c := newFailoverCase(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.f.Allow(ctx, "cancelled", ratelimit.PerMinute(60, 10), 1)
	require.NoError(t, err, "answered by the fallback")
	require.False(t, c.f.Degraded())
	require.Zero(t, c.logs.count(logFailed))
	c.requireFromRedis(t, "next")
}

// slowHook makes every every-th Redis command answer only after the
// caller's deadline, as a busy but healthy Redis (or network) might, and
// lets the others through at once. Each command also moves the
// failover's clock on by tick, so that the breaker's window holds a
// fixed number of calls however fast a busy machine makes them.
type slowHook struct {
	every  int64
	tick   time.Duration
	n      atomic.Int64
	now    atomic.Int64 // the failover's clock
	slowed atomic.Int64 // commands held past their deadline
}

func (h *slowHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *slowHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		h.delay(ctx)
		return next(ctx, cmd)
	}
}

func (h *slowHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		h.delay(ctx)
		return next(ctx, cmds)
	}
}

func (h *slowHook) delay(ctx context.Context) {
	h.now.Add(int64(h.tick))
	if h.n.Add(1)%h.every == 0 {
		// Later than the timeout whatever the load: the answer comes
		// after the deadline that Failover set.
		h.slowed.Add(1)
		<-ctx.Done()
	}
}

// TestFailoverSlowRedisDoesNotFlap: a healthy Redis whose answers are
// sometimes later than the timeout must not switch the limiter to the
// fallback: those calls alone are answered locally (from the last known
// state), the breaker stays closed, and nothing is logged.
//
// The slow calls time out for certain (they wait for their deadline),
// the others have a timeout no healthy call reaches, and the breaker's
// clock moves with the calls (10ms each, so its one-second window holds
// the last ~100), not with the machine's speed. Then, whatever the
// scheduling, a tenth of the calls fail: with at most 8 in flight, any
// window holds far more successes than failures and never a second
// without a success, so a breaker that opened would have miscounted.
func TestFailoverSlowRedisDoesNotFlap(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	opts := srv.Options()
	opts.ContextTimeoutEnabled = true
	const workers = 8
	opts.MinIdleConns = workers
	client := goredis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	redis := ratelimit.NewRedis(client)
	hook := &slowHook{every: 10, tick: 10 * time.Millisecond}
	logs := &logBuffer{}
	f := ratelimit.NewFailover(redis, ratelimit.NewLocal(), &ratelimit.FailoverOpts{
		Timeout: 500 * time.Millisecond, Backoff: 200 * time.Millisecond, Logger: logs.logger(),
	})
	f.SetClock(func() time.Duration { return time.Duration(hook.now.Load()) })
	ctx := context.Background()
	limit := ratelimit.PerMinute(100000, 100000)
	// Every worker first calls Redis directly, before the hook is in place
	// and bypassing the breaker: a fresh server, new connections and the
	// script's first load are slow on a busy machine, and are not what the
	// test is about.
	var wg, warm sync.WaitGroup
	warm.Add(workers)
	armed := make(chan struct{})
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := redis.Allow(ctx, "warmup", limit, 1)
			warm.Done()
			require.NoError(t, err)
			<-armed
			for range 25 {
				_, err := f.Allow(ctx, "busy", limit, 1)
				require.NoError(t, err)
				require.False(t, f.Degraded(), "the breaker opened for a healthy Redis")
			}
		}()
	}
	warm.Wait()
	client.AddHook(hook)
	close(armed)
	wg.Wait()
	require.GreaterOrEqual(t, hook.slowed.Load(), int64(15), "too few calls were slower than the timeout: the test tested nothing")
	require.GreaterOrEqual(t, f.Fallbacks(), uint64(hook.slowed.Load()), "every call slower than the timeout is answered by the fallback")
	require.Less(t, f.Fallbacks(), f.PrimaryAnswers())
	require.Zero(t, f.Openings())
	require.Zero(t, logs.count(logFailed))
}

// TestFailoverContinuesFromLastState: when Redis dies, the per-replica
// fallback takes over each key from the last state Redis reported, not
// from a full bucket: a tenant that had used its burst gets nothing more
// for it by Redis failing.
func TestFailoverContinuesFromLastState(t *testing.T) {
	t.Parallel()
	for _, kind := range clientKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			// The calls before the outage must all be Redis's: one that
			// timed out would be answered locally, and Redis, which may not
			// have counted it, would admit the eleventh. No healthy call takes
			// a second, even on a busy machine. The outage pays for it
			// with idle waiting: go-redis retries a stopped Redis until
			// the deadline, so the five failures that open the breaker
			// take five seconds.
			c := newFailoverCaseTimeout(t, kind.contextTimeouts, time.Second)
			ctx := context.Background()
			// Refills one request every six minutes: none during the test.
			limit := ratelimit.Limit{Rate: 10, Period: time.Hour, Burst: 10}
			for i := range 10 {
				res, err := c.f.Allow(ctx, "spent", limit, 1)
				require.NoError(t, err)
				require.True(t, res.Allowed, "call %d", i)
			}
			res, err := c.f.Allow(ctx, "spent", limit, 1)
			require.NoError(t, err)
			require.False(t, res.Allowed, "burst spent on Redis")
			require.Zero(t, c.f.Fallbacks())

			c.srv.Stop()
			admitted := 0
			for range 50 {
				res, err := c.f.Allow(ctx, "spent", limit, 1)
				require.NoError(t, err)
				if res.Allowed {
					admitted++
				}
			}
			require.True(t, c.f.Degraded(), "a dead Redis opens the breaker")
			require.Equal(t, uint64(1), c.f.Openings())
			require.Zero(t, admitted, "the fallback started from a full bucket")
			require.Equal(t, 1, c.logs.count(logFailed))

			// A key Redis never saw starts full, as it would on Redis.
			res, err = c.f.Allow(ctx, "fresh", limit, 1)
			require.NoError(t, err)
			require.True(t, res.Allowed)
			require.Equal(t, 9, res.Remaining)
		})
	}
}
