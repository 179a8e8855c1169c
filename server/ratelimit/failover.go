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
	DefaultFailoverTimeout = 5 * time.Millisecond
	DefaultFailoverBackoff = time.Second
)

// FailoverOpts tunes a Failover; the zero value (or nil) is the default.
type FailoverOpts struct {
	// Timeout is the longest a call waits for the primary before answering
	// from the fallback (default 5ms): rate limiting sits in front of every
	// request, so it must never cost more than a few milliseconds.
	Timeout time.Duration
	// Backoff is how long the primary is left alone after it failed, before
	// one call probes it again (default 1s). Meanwhile every call goes
	// straight to the fallback, so a dead Redis costs nothing per request.
	Backoff time.Duration
	// Logger receives one line when the primary fails and one when it
	// recovers (default slog.Default()).
	Logger *slog.Logger
}

// Failover asks a primary limiter (Redis) and, when it errors or is slower
// than its timeout, answers from a fallback (Local) instead: it fails open
// to a per-replica limit rather than refusing or stalling requests. After a
// failure it stops calling the primary for a backoff, then lets a single
// call probe it, so it recovers by itself once the primary is back.
//
// While the primary is down each replica limits on its own, starting every
// key from a full burst: tenants get up to the replicas' count times their
// limit, which is better than an outage of every tenant.
type Failover struct {
	primary, fallback Limiter
	direct            bool // primary returns by its context's deadline
	timeout, backoff  time.Duration
	logger            *slog.Logger
	start             time.Time

	down    atomic.Bool
	retryAt atomic.Int64 // when down: time since start at which to probe the primary again

	primaryCalls  atomic.Uint64
	fallbackCalls atomic.Uint64
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
		logger:   opts.Logger,
		start:    time.Now(),
	}
	if f.timeout <= 0 {
		f.timeout = DefaultFailoverTimeout
	}
	if f.backoff <= 0 {
		f.backoff = DefaultFailoverBackoff
	}
	if f.logger == nil {
		f.logger = slog.Default()
	}
	if p, ok := primary.(deadlineBound); ok {
		f.direct = p.returnsByDeadline()
	}
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
	if f.down.Load() {
		at := f.retryAt.Load()
		// One call wins the swap and probes; the others keep using the
		// fallback, so a still-dead primary delays only that one call.
		if f.now() < at || !f.retryAt.CompareAndSwap(at, f.now()+int64(f.backoff)) {
			return f.fromFallback(ctx, key, l, cost)
		}
	}
	res, err := f.callPrimary(ctx, key, l, cost)
	if err == nil {
		f.primaryCalls.Add(1)
		if f.down.CompareAndSwap(true, false) {
			f.logger.InfoContext(ctx, "rate limiter: primary is back; no longer using the per-replica fallback")
		}
		return res, nil
	}
	if ctx.Err() != nil {
		// The caller went away or ran out of time: not the primary's fault.
		return f.fromFallback(ctx, key, l, cost)
	}
	f.retryAt.Store(f.now() + int64(f.backoff))
	if f.down.CompareAndSwap(false, true) {
		f.logger.WarnContext(ctx, "rate limiter: primary failed; using the per-replica fallback",
			"error", err, "retry_in", f.backoff)
	}
	return f.fromFallback(ctx, key, l, cost)
}

var errPrimaryTimeout = errors.New("rate limiter primary timed out")

// callPrimary calls the primary but returns after f.timeout at the latest.
// The deadline is set on ctx, and a primary that honours it is called
// directly. Any other (go-redis ignores deadlines unless
// ContextTimeoutEnabled) runs in its own goroutine, which finishes in the
// background if it is abandoned; the backoff keeps such stragglers to about
// one per backoff.
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

func (f *Failover) now() int64 { return int64(time.Since(f.start)) }

// Fallbacks is the number of calls answered by the fallback, for metrics:
// it grows while the primary is down or slow.
func (f *Failover) Fallbacks() uint64 { return f.fallbackCalls.Load() }

// PrimaryAnswers is the number of calls answered by the primary.
func (f *Failover) PrimaryAnswers() uint64 { return f.primaryCalls.Load() }

// Degraded reports whether the primary is currently considered down, so
// that calls are answered by the fallback.
func (f *Failover) Degraded() bool { return f.down.Load() }
