package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// Defaults of FailoverOpts.
const (
	// DefaultFailoverTimeout bounds one decision by Redis. It is sized
	// from measurement (quarters-bench limiter, 200 concurrent callers
	// on a loaded 2-core machine: p99.9 of a decision ~20 ms, the largest
	// of a few hundred thousand ~60 ms), with room on top: a healthy
	// Redis must never time out, because each timeout is a decision Redis
	// did not make. Redis that is really down fails at once (connection
	// refused) or trips the breaker within its first few calls, so the
	// timeout is paid a handful of times per outage, not per call.
	DefaultFailoverTimeout = 150 * time.Millisecond
	// DefaultFailoverFailures is how many failed calls open the breaker:
	// within the last second, if they are at least half of its calls, or
	// in a row with no success for a second (a quiet replica). A slow
	// moment, even one that times out every call in flight at once, is
	// not an outage.
	DefaultFailoverFailures = 5
	// failingFor is how long a run of failures without a success must
	// last to open the breaker however few calls there are.
	failingFor = int64(time.Second)
	// DefaultFailoverBackoff is how long the breaker stays open before
	// one call probes Redis again.
	DefaultFailoverBackoff = time.Second
)

// LogBreakerOpen and LogBreakerClosed start the two lines Failover logs
// per outage.
const (
	LogBreakerOpen   = "rate limiter: Redis is failing; breaker open, limiting per replica"
	LogBreakerClosed = "rate limiter: Redis answers again; breaker closed, shared limits resumed"
)

// FailoverOpts tunes a Failover; the zero value (or nil) is the default.
type FailoverOpts struct {
	// Timeout is the longest one call waits for the primary before that
	// call is answered by the fallback (default DefaultFailoverTimeout).
	Timeout time.Duration
	// Failures is how many calls must fail (error or timeout) to open the
	// breaker: within the last second, and at least half of its calls; or
	// in a row, with no success for a second (default
	// DefaultFailoverFailures).
	Failures int
	// Backoff is how long the open breaker leaves the primary alone before
	// one call probes it (default DefaultFailoverBackoff). Meanwhile every
	// call goes straight to the fallback, so a dead Redis costs nothing
	// per request.
	Backoff time.Duration
	// Logger receives one line when the breaker opens and one when it
	// closes, never one per call (default slog.Default()).
	Logger *slog.Logger
}

// Breaker states.
const (
	closed int32 = iota
	open
	halfOpen
)

// Failover asks a primary limiter (Redis) and answers from a fallback
// (Local) when the primary cannot: it fails open to a per-replica limit
// rather than refusing or stalling requests.
//
// A circuit breaker decides when the primary is down. Closed, every call
// asks the primary; a call that fails or exceeds the timeout is answered
// by the fallback, and the breaker opens when the last second holds at
// least Failures such calls and they are at least half of its calls, or
// when Failures calls in a row failed and none succeeded for a second (so
// that a replica with few calls, each waiting out the timeout, opens it
// too). Not simply "N in a row": with hundreds of calls in flight, one
// stall of the process fails them all together while Redis is fine.
// Open, calls go to the fallback only, until Backoff has passed; then
// (half-open) a single call probes the primary while the others keep
// using the fallback. A successful probe closes the breaker, a failed one
// opens it for another Backoff. Only the opening and the closing are
// logged.
//
// The fallback does not start from a full bucket: every answer of the
// primary is copied into it (Seed), so a call the fallback must answer
// continues from the last state Redis reported for its key. During an
// outage each replica then limits on its own from that state, so N
// replicas together admit up to N times the rate, but no replica hands
// out a fresh burst.
type Failover struct {
	primary, fallback Limiter
	seeder            seeder // fallback, if it can be seeded
	direct            bool   // primary returns by its context's deadline
	timeout, backoff  time.Duration
	failures          int64
	logger            *slog.Logger
	clock             func() time.Duration // monotonic time since NewFailover; replaced in tests

	state    atomic.Int32
	recent   window       // the closed breaker's outcomes over the last second
	inARow   atomic.Int64 // failures since the last success
	lastOK   atomic.Int64 // time since start of the last success
	retryAt  atomic.Int64 // when open: time since start at which to probe
	openedAt atomic.Int64 // when open: time since start it opened

	primaryCalls  atomic.Uint64
	fallbackCalls atomic.Uint64
	openings      atomic.Uint64
}

// seeder is a fallback that can take over a key's state (Local).
type seeder interface {
	Seed(key string, resetAfter time.Duration)
}

// NewFailover returns a limiter that uses primary and falls back to
// fallback; opts may be nil.
func NewFailover(primary, fallback Limiter, opts *FailoverOpts) *Failover {
	if opts == nil {
		opts = &FailoverOpts{}
	}
	f := &Failover{
		primary:  primary,
		fallback: fallback,
		timeout:  opts.Timeout,
		backoff:  opts.Backoff,
		failures: int64(opts.Failures),
		logger:   opts.Logger,
	}
	start := time.Now()
	f.clock = func() time.Duration { return time.Since(start) }
	if f.timeout <= 0 {
		f.timeout = DefaultFailoverTimeout
	}
	if f.backoff <= 0 {
		f.backoff = DefaultFailoverBackoff
	}
	if f.failures <= 0 {
		f.failures = DefaultFailoverFailures
	}
	if f.logger == nil {
		f.logger = slog.Default()
	}
	if p, ok := primary.(deadlineBound); ok {
		f.direct = p.returnsByDeadline()
	}
	f.seeder, _ = fallback.(seeder)
	return f
}

// deadlineBound is implemented by a limiter that may know it returns by
// its context's deadline (Redis with a client that has
// ContextTimeoutEnabled).
type deadlineBound interface {
	returnsByDeadline() bool
}

// Allow implements [Limiter]. Its errors are the fallback's (none, for
// Local), and ErrInvalidLimit for an invalid limit or cost, which would fail
// on the fallback just the same.
func (f *Failover) Allow(ctx context.Context, key string, l Limit, cost int) (Result, error) {
	if err := validate(l, cost); err != nil {
		return Result{}, err
	}
	switch f.state.Load() {
	case open:
		at := f.retryAt.Load()
		// One call wins the swap and probes; the others keep using the
		// fallback, so a still-dead primary delays only that one call.
		if f.now() < at || !f.state.CompareAndSwap(open, halfOpen) {
			return f.fromFallback(ctx, key, l, cost)
		}
		return f.probe(ctx, key, l, cost)
	case halfOpen:
		return f.fromFallback(ctx, key, l, cost)
	}
	res, err := f.callPrimary(ctx, key, l, cost)
	if err == nil {
		now := f.now()
		f.recent.add(now, false)
		f.inARow.Store(0)
		f.lastOK.Store(now)
		return f.fromPrimary(key, res), nil
	}
	if ctx.Err() != nil {
		// The caller went away or ran out of time: not the primary's fault.
		return f.fromFallback(ctx, key, l, cost)
	}
	now := f.now()
	ok, failed := f.recent.add(now, true)
	mostly := failed >= f.failures && 2*failed >= ok+failed
	long := f.inARow.Add(1) >= f.failures && now-f.lastOK.Load() >= failingFor
	if (mostly || long) && f.state.CompareAndSwap(closed, open) {
		f.openedAt.Store(now)
		f.retryAt.Store(now + int64(f.backoff))
		f.openings.Add(1)
		f.logger.WarnContext(ctx, LogBreakerOpen, "failed_calls", failed, "ok_calls", ok, "error", err, "probe_every", f.backoff.String())
	}
	return f.fromFallback(ctx, key, l, cost)
}

// window counts outcomes over the last second in ten slots of 100ms. It
// is lock-free and approximate at slot boundaries, which is all the
// breaker needs.
type window struct{ slots [windowSlots]windowSlot }

const (
	windowSlots = 10
	slotWidth   = int64(100 * time.Millisecond)
)

type windowSlot struct {
	epoch      atomic.Int64 // which 100ms the counts are of, plus 1 (0: never used)
	ok, failed atomic.Int64
}

// add counts one outcome at now (time since start) and, for a failure,
// returns the window's totals; successes, the common case, skip the sum.
func (w *window) add(now int64, failed bool) (ok, fails int64) {
	e := now/slotWidth + 1
	s := &w.slots[e%windowSlots]
	if old := s.epoch.Load(); old != e && s.epoch.CompareAndSwap(old, e) {
		s.ok.Store(0)
		s.failed.Store(0)
	}
	if !failed {
		s.ok.Add(1)
		return 0, 0
	}
	s.failed.Add(1)
	for i := range w.slots {
		if ep := w.slots[i].epoch.Load(); ep > e-windowSlots {
			ok += w.slots[i].ok.Load()
			fails += w.slots[i].failed.Load()
		}
	}
	return ok, fails
}

// reset forgets the outcomes: a closed breaker starts with a clean slate.
func (w *window) reset() {
	for i := range w.slots {
		w.slots[i].epoch.Store(0)
	}
}

// probe asks the primary once while the breaker is half-open: success
// closes the breaker, failure opens it again for another backoff.
func (f *Failover) probe(ctx context.Context, key string, l Limit, cost int) (Result, error) {
	res, err := f.callPrimary(ctx, key, l, cost)
	if err != nil {
		f.retryAt.Store(f.now() + int64(f.backoff))
		f.state.Store(open)
		return f.fromFallback(ctx, key, l, cost)
	}
	f.recent.reset()
	f.inARow.Store(0)
	f.lastOK.Store(f.now())
	f.state.Store(closed)
	f.logger.InfoContext(ctx, LogBreakerClosed, "open_for", time.Duration(f.now()-f.openedAt.Load()).Round(time.Millisecond).String())
	return f.fromPrimary(key, res), nil
}

// fromPrimary counts the primary's answer and copies it into the fallback.
func (f *Failover) fromPrimary(key string, res Result) Result {
	f.primaryCalls.Add(1)
	if f.seeder != nil {
		f.seeder.Seed(key, res.ResetAfter)
	}
	return res
}

var errPrimaryTimeout = errors.New("rate limiter primary timed out")

// callPrimary calls the primary but returns after f.timeout at the latest.
// The deadline is set on ctx, and a primary that honours it is called
// directly. Any other (go-redis ignores deadlines unless
// ContextTimeoutEnabled) runs in its own goroutine, which finishes in the
// background if it is abandoned; the breaker keeps such stragglers to a
// few per outage.
func (f *Failover) callPrimary(ctx context.Context, key string, l Limit, cost int) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	if f.direct {
		res, err := f.primary.Allow(ctx, key, l, cost)
		if err != nil && ctx.Err() != nil {
			return Result{}, fmt.Errorf("%w after %s: %w", errPrimaryTimeout, f.timeout, err)
		}
		return res, err
	}
	type answer struct {
		res Result
		err error
	}
	done := make(chan answer, 1) // buffered: an abandoned call must not block forever
	go func() {
		res, err := f.primary.Allow(ctx, key, l, cost)
		done <- answer{res, err}
	}()
	select {
	case a := <-done:
		return a.res, a.err
	case <-ctx.Done():
		return Result{}, fmt.Errorf("%w after %s: %w", errPrimaryTimeout, f.timeout, ctx.Err())
	}
}

func (f *Failover) fromFallback(ctx context.Context, key string, l Limit, cost int) (Result, error) {
	f.fallbackCalls.Add(1)
	return f.fallback.Allow(ctx, key, l, cost)
}

func (f *Failover) now() int64 { return int64(f.clock()) }

// Fallbacks is the number of calls answered by the fallback, for metrics:
// it grows while the breaker is open, and by one per failed call while it
// is closed.
func (f *Failover) Fallbacks() uint64 { return f.fallbackCalls.Load() }

// PrimaryAnswers is the number of calls answered by the primary.
func (f *Failover) PrimaryAnswers() uint64 { return f.primaryCalls.Load() }

// Openings is how many times the breaker has opened: the number of
// switches to per-replica limiting.
func (f *Failover) Openings() uint64 { return f.openings.Load() }

// Degraded reports whether the breaker is open (or probing), so that
// calls are answered by the fallback.
func (f *Failover) Degraded() bool { return f.state.Load() != closed }
