package ratelimit

import (
	"context"
	"fmt"

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
}

// NewRedis returns a limiter that keeps its state in c.
//
// A call waits as long as c lets it: wrap the limiter in a [Failover] so
// that a slow or unreachable Redis costs a request milliseconds, not c's
// read timeout.
func NewRedis(c redis.UniversalClient) *Redis {
	return &Redis{limiter: redis_rate.NewLimiter(c)}
}

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
	out := Result{
		Allowed:    res.Allowed > 0,
		Limit:      l,
		Remaining:  res.Remaining,
		RetryAfter: res.RetryAfter,
		ResetAfter: res.ResetAfter,
	}
	if out.Allowed {
		out.RetryAfter = 0 // redis_rate says -1
	}
	return out, nil
}
