package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/quarters-dev/quarters/internal/apierr"
)

// Response headers. RateLimit-Policy and RateLimit follow
// draft-ietf-httpapi-ratelimit-headers-11 (May 2026; the syntax is that of
// drafts 08 to 11): each is a Structured Field List of one Item, a String
// naming the policy with parameters, q (quota) and w (window, seconds) for
// the policy, r (remaining quota) and t (seconds) for its current state.
// The X-RateLimit-* trio is the older de-facto convention many clients and
// SDKs still read.
const (
	HeaderPolicy     = "RateLimit-Policy"
	HeaderRateLimit  = "RateLimit"
	HeaderLimit      = "X-RateLimit-Limit"
	HeaderRemaining  = "X-RateLimit-Remaining"
	HeaderReset      = "X-RateLimit-Reset"
	HeaderRetryAfter = "Retry-After"
)

// policyName identifies the one policy in RateLimit-Policy and RateLimit.
// It is fixed rather than the plan's name so that clients can match the two
// fields, and the field stays the same across a plan change.
const policyName = `"default"`

// HeaderNames lists the response headers the interceptor sets, for CORS's
// Access-Control-Expose-Headers.
func HeaderNames() []string {
	return []string{HeaderPolicy, HeaderRateLimit, HeaderLimit, HeaderRemaining, HeaderReset, HeaderRetryAfter}
}

// Policy is what the interceptor needs to know about the caller.
type Policy struct {
	// Key identifies whose allowance the call consumes (the tenant id).
	Key string
	// Limit is the caller's plan's limit.
	Limit Limit
	// Plan names the plan, for the over-limit message.
	Plan string
}

// InterceptorParams configures NewInterceptor. Limiter and PolicyFunc are
// required; the rest is optional.
type InterceptorParams struct {
	// Limiter decides; in production a Failover over Redis and Local.
	Limiter Limiter
	// PolicyFunc returns the policy of the caller's call to procedure, or
	// false when the call is not limited.
	PolicyFunc func(ctx context.Context, procedure string) (Policy, bool)
	// CostFunc is how many requests a call to procedure counts as; nil, or
	// a result below 1, means 1.
	CostFunc func(procedure string) int
	// UpgradeURL is where the over-limit message sends the caller to raise
	// their limit; omitted from the message when empty.
	UpgradeURL string
	// DecisionFunc, when set, sees every decision (allowed or not), before
	// the handler runs: the hook for usage metering.
	DecisionFunc func(ctx context.Context, procedure string, r Result)
	// Logger receives the limiter's errors (default slog.Default()).
	Logger *slog.Logger
}

// NewInterceptor returns the interceptor that rate-limits handler calls,
// unary and streaming (a stream counts once, when it opens). It must run
// after the layer that puts the caller in the context, since PolicyFunc
// reads it there.
//
// Every limited response carries the limit's state in its headers, on
// success and on error alike. Over the limit the call fails with
// RESOURCE_EXHAUSTED (HTTP 429 with the Connect protocol), a Retry-After
// header and a RetryInfo detail that agree, and a message naming the plan.
// If the limiter itself fails, the call is allowed and the error logged: an
// unavailable limiter must not become an unavailable API.
//
// It panics if Limiter or PolicyFunc is nil.
func NewInterceptor(p InterceptorParams) connect.Interceptor {
	if p.Limiter == nil || p.PolicyFunc == nil {
		panic("ratelimit: NewInterceptor needs a Limiter and a PolicyFunc")
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	return &interceptor{p: p}
}

type interceptor struct {
	p         InterceptorParams
	lastError atomic.Int64 // unix nanoseconds of the last logged limiter error
	dropped   atomic.Int64 // limiter errors not logged since then
}

func (i *interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		policy, res, limited := i.decide(ctx, req.Spec().Procedure)
		if !limited {
			return next(ctx, req)
		}
		// The handler's call info carries headers out on success and on any
		// error, including one that is not a *connect.Error and that an
		// outer interceptor may still replace.
		info, hasInfo := connect.CallInfoForHandlerContext(ctx)
		if hasInfo {
			setHeaders(info.ResponseHeader(), res)
		}
		if !res.Allowed {
			err := i.overLimit(ctx, policy, res)
			if !hasInfo {
				setHeaders(err.Meta(), res)
			}
			return nil, err
		}
		resp, err := next(ctx, req)
		if !hasInfo {
			// Only reachable when the UnaryFunc is called outside a
			// connect.Handler; headers then go wherever they still can.
			var cerr *connect.Error
			switch {
			case err == nil && resp != nil:
				setHeaders(resp.Header(), res)
			case errors.As(err, &cerr):
				setHeaders(cerr.Meta(), res)
			}
		}
		return resp, err
	}
}

func (i *interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i *interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		policy, res, limited := i.decide(ctx, conn.Spec().Procedure)
		if !limited {
			return next(ctx, conn)
		}
		// Headers, not error metadata: streaming protocols send that in
		// trailers, where the draft forbids the RateLimit fields.
		setHeaders(conn.ResponseHeader(), res)
		if !res.Allowed {
			return i.overLimit(ctx, policy, res)
		}
		return next(ctx, conn)
	}
}

// decide asks the limiter about the call. It returns false when the call is
// not limited: no policy, or the limiter failed (fail open).
func (i *interceptor) decide(ctx context.Context, procedure string) (Policy, Result, bool) {
	policy, ok := i.p.PolicyFunc(ctx, procedure)
	if !ok {
		return Policy{}, Result{}, false
	}
	cost := 1
	if i.p.CostFunc != nil {
		cost = max(i.p.CostFunc(procedure), 1)
	}
	res, err := i.p.Limiter.Allow(ctx, policy.Key, policy.Limit, cost)
	if err != nil {
		i.logError(ctx, procedure, policy, err)
		return Policy{}, Result{}, false
	}
	if i.p.DecisionFunc != nil {
		i.p.DecisionFunc(ctx, procedure, res)
	}
	return policy, res, true
}

// logError logs a limiter failure at most every ten seconds: with the
// limiter down every request fails the same way, and the count of the
// others is what matters.
func (i *interceptor) logError(ctx context.Context, procedure string, p Policy, err error) {
	now := time.Now().UnixNano()
	last := i.lastError.Load()
	if now-last < int64(10*time.Second) || !i.lastError.CompareAndSwap(last, now) {
		i.dropped.Add(1)
		return
	}
	i.p.Logger.ErrorContext(ctx, "rate limiter failed; allowing the call",
		"procedure", procedure, "key", p.Key, "error", err, "suppressed", i.dropped.Swap(0))
}

// overLimit is the error of a call over its limit. Retry-After (set with
// the other headers) and RetryInfo carry the same wait: RetryInfo exactly,
// Retry-After rounded up to whole seconds as HTTP requires.
func (i *interceptor) overLimit(ctx context.Context, p Policy, r Result) *connect.Error {
	msg := "rate limit of " + r.Limit.String()
	if p.Plan != "" {
		msg += fmt.Sprintf(" for plan %q", p.Plan)
	}
	msg += fmt.Sprintf(" exceeded; retry in %ds", retryAfterSeconds(r))
	if i.p.UpgradeURL != "" {
		msg += " or upgrade at " + i.p.UpgradeURL
	}
	return apierr.RetryAfter(connect.NewError(connect.CodeResourceExhausted, errors.New(msg)), retryDelay(r))
}

// retryDelay is how long a refused caller should wait: the limiter's
// RetryAfter, or a second if it gave none.
func retryDelay(r Result) time.Duration {
	if r.RetryAfter <= 0 {
		return time.Second
	}
	return r.RetryAfter
}

// retryAfterSeconds is retryDelay in whole seconds, rounded up, so that a
// client that honours it is never early.
func retryAfterSeconds(r Result) int64 { return ceilSeconds(retryDelay(r)) }

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(math.Ceil(d.Seconds()))
}

// setHeaders writes r's state into h. X-RateLimit-Reset and the RateLimit
// field's t are both seconds, not timestamps, so client clocks don't matter.
// When refused, t is the Retry-After (the draft asks that Retry-After not
// point before the end of t); otherwise it is the time until the bucket is
// full again.
func setHeaders(h http.Header, r Result) {
	reset := ceilSeconds(r.ResetAfter)
	t := reset
	if !r.Allowed {
		t = retryAfterSeconds(r)
		h.Set(HeaderRetryAfter, strconv.FormatInt(t, 10))
	}
	h.Set(HeaderPolicy, policyName+";q="+strconv.Itoa(r.Limit.Rate)+";w="+strconv.FormatInt(windowSeconds(r.Limit.Period), 10))
	h.Set(HeaderRateLimit, policyName+";r="+strconv.Itoa(r.Remaining)+";t="+strconv.FormatInt(t, 10))
	h.Set(HeaderLimit, strconv.Itoa(r.Limit.Rate))
	h.Set(HeaderRemaining, strconv.Itoa(r.Remaining))
	h.Set(HeaderReset, strconv.FormatInt(reset, 10))
}

// windowSeconds is the policy's w: whole seconds, at least 1, as the draft
// has no sub-second windows.
func windowSeconds(d time.Duration) int64 { return max(ceilSeconds(d), 1) }
