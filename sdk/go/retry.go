package quarters

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"connectrpc.com/connect"
)

// RetryPolicy is how a Client retries failed calls. What it retries:
//
//   - RESOURCE_EXHAUSTED from the rate limiter (a RetryInfo detail or a
//     Retry-After header, and no QuotaFailure), for every method: the server
//     refuses before the handler runs, so nothing happened and repeating the
//     call is safe even for creates. The Client waits exactly what the
//     server asked for (RetryInfo, which is precise, else Retry-After, whole
//     seconds): waiting less is refused again, and the limiter's answer
//     already spreads callers out. If that wait exceeds MaxBackoff, or would
//     outlast the context's deadline, the error is returned at once instead:
//     a caller is better served by RateLimited telling it how long than by a
//     call that hangs.
//   - UNAVAILABLE, with exponential backoff and jitter, only for methods
//     without side effects (Get*, List*), or for any method when the
//     connection could not be opened, since then the request was never
//     sent. An UNAVAILABLE create may have been carried out before the
//     connection broke, and repeating it could create twice.
//
// Nothing else is retried: quota failures (QuotaFailure) stay exhausted
// until the tenant deletes something or upgrades, and other codes would
// fail the same way again. A cancelled context stops the wait at once.
type RetryPolicy struct {
	// MaxAttempts is the most times one call is sent, the first included;
	// 1 disables retries.
	MaxAttempts int
	// InitialBackoff is the wait before the first retry after UNAVAILABLE;
	// each further retry doubles it.
	InitialBackoff time.Duration
	// MaxBackoff is the longest the Client waits before a retry. It caps the
	// exponential backoff, and a rate-limit refusal that asks for longer is
	// returned rather than waited out.
	MaxBackoff time.Duration
}

// DefaultRetryPolicy is the policy of a Client without WithRetry: 3
// attempts, 100 ms then 200 ms (±50% jitter) after UNAVAILABLE, and
// rate-limit waits of up to 5 s, which covers the free plan's refill of one
// request every 600 ms with room to spare.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 3, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second}
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy()
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = d.InitialBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = d.MaxBackoff
	}
	return p
}

// retryInterceptor applies a RetryPolicy to unary calls. Streams pass
// through: a stream's messages cannot be replayed from here.
type retryInterceptor struct {
	policy RetryPolicy
	// jitter returns a fraction in [0, 1); a field so tests can fix it.
	jitter func() float64
}

func newRetryInterceptor(p RetryPolicy) *retryInterceptor {
	return &retryInterceptor{policy: p, jitter: rand.Float64}
}

func (r *retryInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	if r.policy.MaxAttempts <= 1 {
		return next
	}
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		for attempt := 1; ; attempt++ {
			resp, err := next(ctx, req)
			if err == nil || attempt >= r.policy.MaxAttempts || ctx.Err() != nil {
				return resp, err
			}
			wait, ok := r.delay(err, attempt, req.Spec().IdempotencyLevel)
			if !ok {
				return resp, err
			}
			if deadline, has := ctx.Deadline(); has && time.Until(deadline) < wait {
				return resp, err // the retry could not finish in time anyway
			}
			if werr := sleep(ctx, wait); werr != nil {
				code := connect.CodeCanceled
				if errors.Is(werr, context.DeadlineExceeded) {
					code = connect.CodeDeadlineExceeded
				}
				return nil, connect.NewError(code, fmt.Errorf("%w while waiting %v to retry after: %w", werr, wait, err))
			}
		}
	}
}

func (r *retryInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (r *retryInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// delay decides whether err, the outcome of attempt (1 for the first), is
// retried, and after how long.
func (r *retryInterceptor) delay(err error, attempt int, idempotency connect.IdempotencyLevel) (time.Duration, bool) {
	switch connect.CodeOf(err) {
	case connect.CodeResourceExhausted:
		wait, ok := RateLimited(err)
		return wait, ok && wait <= r.policy.MaxBackoff
	case connect.CodeUnavailable:
		if idempotency == connect.IdempotencyUnknown && !notSent(err) {
			return 0, false
		}
		return r.backoff(attempt), true
	}
	return 0, false
}

// backoff is the wait after the attempt-th failure: InitialBackoff doubled
// per earlier retry, capped at MaxBackoff, then scaled by a random factor
// in [0.5, 1) so that clients that failed together do not retry together.
func (r *retryInterceptor) backoff(attempt int) time.Duration {
	d := r.policy.InitialBackoff
	for i := 1; i < attempt && d < r.policy.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, r.policy.MaxBackoff)
	return time.Duration(float64(d) * (0.5 + r.jitter()/2))
}

// notSent reports whether err shows that the request never left the
// client: the connection could not be opened (refused, unreachable, no
// such host).
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// sleep waits d, or until ctx ends, whose error it then returns.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
