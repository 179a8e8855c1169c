package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Redis is the GCRA limiter shared by every replica: each decision is one
// Lua script (redis_rate's), which reads the key's TAT, decides and writes
// it back atomically in Redis, using Redis's clock so that replicas' clocks
// don't matter. Keys are stored as "rate:<key>" and expire when their bucket
// is full again.
type Redis struct {
	limiter *redis_rate.Limiter
	// byDeadline: the client gives up at the context's deadline.
	byDeadline bool
}

// NewRedis returns a limiter that keeps its state in c.
//
// A call waits as long as c lets it: wrap the limiter in a [Failover] so
// that a slow or unreachable Redis costs a request milliseconds, not c's
// read timeout. Create c with ContextTimeoutEnabled: go-redis then gives up
// at the context's deadline, and Failover can call it directly; otherwise
// Failover must run each call in a goroutine that it can abandon, and that
// hand-off about doubles the cost of a decision (see BenchmarkFailoverAllow).
func NewRedis(c redis.UniversalClient) *Redis {
	return &Redis{limiter: redis_rate.NewLimiter(c), byDeadline: contextTimeouts(c)}
}

// contextTimeouts reports whether c honours context deadlines.
func contextTimeouts(c redis.UniversalClient) bool {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled
	}
	return false
}

// returnsByDeadline implements deadlineBound.
func (r *Redis) returnsByDeadline() bool { return r.byDeadline }

// Allow implements [Limiter]. It returns an error wrapping ErrInvalidLimit
// for an invalid limit or cost, and otherwise the client's error (a
// connection or context error) when Redis could not decide.
func (r *Redis) Allow(ctx context.Context, key string, l Limit, cost int) (Result, error) {
	if err := validate(l, cost); err != nil {
		return Result{}, err
	}
	res, err := r.limiter.AllowN(ctx, key, redis_rate.Limit{Rate: l.Rate, Burst: l.Burst, Period: l.Period}, cost)
	if err != nil {
		return Result{}, fmt.Errorf("redis rate limit: %w", err)
	}
	if res.Allowed == 0 {
		return Result{Limit: l, RetryAfter: res.RetryAfter, ResetAfter: res.ResetAfter}, nil
	}
	// The script's own remaining is truncated from a float that is often
	// a hair under the integer it should be (it computes in seconds since
	// 2017, where a double's resolution is about 60ns), so the tenant would
	// be told one request fewer than Local tells them. It is recomputed
	// from ResetAfter: the bucket is below full by exactly that much.
	interval := float64(l.Period) / float64(l.Rate)
	burstOffset := time.Duration(interval * float64(l.Burst))
	return Result{
		Allowed:    true,
		Limit:      l,
		Remaining:  max(remaining(burstOffset-res.ResetAfter, interval), 0),
		ResetAfter: res.ResetAfter,
	}, nil
}
