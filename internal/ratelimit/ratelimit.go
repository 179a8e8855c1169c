// Package ratelimit limits each tenant's request rate with GCRA (the generic
// cell rate algorithm), the algorithm of a leaky bucket that stores one
// timestamp per key instead of a counter per window, so it has no window
// edges for a client to burst across.
//
// Three limiters share one set of semantics: [Redis] (shared by every
// replica, one Lua script per decision), [Local] (in process, for a single
// replica or when there is no Redis) and [Failover], which asks Redis and
// answers from Local when Redis is slow or down. [NewInterceptor] applies a
// limiter to Connect calls and reports the limit in response headers.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Limit is a GCRA limit: Rate requests per Period, of which up to Burst may
// arrive at once. A key that has been idle for Period*Burst/Rate may again
// send Burst requests back to back; after that, one request every
// Period/Rate.
type Limit struct {
	Rate   int
	Period time.Duration
	Burst  int
}

// PerMinute is the Limit of rate requests per minute with a burst of burst.
func PerMinute(rate, burst int) Limit {
	return Limit{Rate: rate, Period: time.Minute, Burst: burst}
}

// String describes the limit for people, as "100 requests per minute".
func (l Limit) String() string {
	unit := "request"
	if l.Rate != 1 {
		unit = "requests"
	}
	return fmt.Sprintf("%d %s per %s", l.Rate, unit, periodName(l.Period))
}

func periodName(d time.Duration) string {
	switch d {
	case time.Second:
		return "second"
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	case 24 * time.Hour:
		return "day"
	}
	return d.String()
}

// ErrInvalidLimit is returned (wrapped) by every Limiter for a Limit that
// cannot be enforced or a cost below 1. Redis would divide by zero in Lua
// and Local would compute with infinities, so both refuse instead.
var ErrInvalidLimit = errors.New("invalid rate limit")

// maxSpan is the longest a bucket may take to drain.
const maxSpan = 100 * 365 * 24 * time.Hour

func validate(l Limit, cost int) error {
	switch {
	case l.Rate < 1:
		return fmt.Errorf("%w: rate %d < 1", ErrInvalidLimit, l.Rate)
	case l.Period <= 0:
		return fmt.Errorf("%w: period %s <= 0", ErrInvalidLimit, l.Period)
	case l.Burst < 1:
		return fmt.Errorf("%w: burst %d < 1", ErrInvalidLimit, l.Burst)
	case cost < 1:
		return fmt.Errorf("%w: cost %d < 1", ErrInvalidLimit, cost)
	case float64(l.Period)/float64(l.Rate)*float64(max(l.Burst, cost)) > float64(maxSpan):
		// Local keeps times in int64 nanoseconds, which a bucket that takes
		// centuries to drain would overflow.
		return fmt.Errorf("%w: a burst of %d at %s takes too long to drain", ErrInvalidLimit, max(l.Burst, cost), l)
	}
	return nil
}

// remaining is how many requests of cost 1 fit in diff, the bucket's
// headroom after a call (now minus the moment it would be empty), at one
// request per interval nanoseconds. A request that becomes possible within
// the next microsecond counts: Redis computes in float seconds since 2017,
// where an exact 4 may come out as 3.9999999, and that microsecond absorbs
// the error.
func remaining(diff time.Duration, interval float64) int {
	return int(float64(diff+time.Microsecond) / interval)
}

// Result is the outcome of one Allow call.
type Result struct {
	// Allowed reports whether the call may proceed; when it is false,
	// nothing was consumed.
	Allowed bool
	// Limit is the limit the decision was made under.
	Limit Limit
	// Remaining is how many more requests of cost 1 would be allowed right
	// now (0 when not allowed).
	Remaining int
	// RetryAfter is, when not allowed, how long to wait before the same call
	// would be allowed; it is 0 when allowed. A cost above the burst is
	// never allowed, however long the caller waits.
	RetryAfter time.Duration
	// ResetAfter is how long until the key is back to a full burst.
	ResetAfter time.Duration
}

// Limiter decides whether a call under key may proceed. Cost is how many
// requests the call counts as; it must be at least 1.
type Limiter interface {
	// Allow consumes cost from key's allowance under l if enough is left.
	// It returns an error wrapping ErrInvalidLimit for an unusable l or
	// cost, and otherwise only errors of the backing store.
	Allow(ctx context.Context, key string, l Limit, cost int) (Result, error)
}
