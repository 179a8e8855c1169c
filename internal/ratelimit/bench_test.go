package ratelimit_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/quarters-dev/quarters/internal/ratelimit"
	"github.com/quarters-dev/quarters/internal/redistest"
)

// benchLimit is the enterprise plan's limit.
var benchLimit = ratelimit.PerMinute(10_000, 10_000)

func benchAllow(b *testing.B, l ratelimit.Limiter) {
	b.ReportAllocs()
	ctx := context.Background()
	for b.Loop() {
		if _, err := l.Allow(ctx, "bench", benchLimit, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedisAllow is one decision's round trip to a local Redis over a
// unix socket: the floor of what each request pays with Redis.
func BenchmarkRedisAllow(b *testing.B) {
	benchAllow(b, ratelimit.NewRedis(redistest.New(b).Client()))
}

// BenchmarkFailoverAllow is BenchmarkRedisAllow through Failover: the
// difference is the cost of bounding the call by the timeout, with a
// client that honours context deadlines (a timer per call) and with one
// that doesn't (a goroutine hand-off per call). The timeout is long so that
// a slow moment of a busy machine does not turn the rest of the run into a
// benchmark of the fallback.
func BenchmarkFailoverAllow(b *testing.B) {
	for _, kind := range clientKinds {
		b.Run(kind.name, func(b *testing.B) {
			opts := redistest.New(b).Options()
			opts.ContextTimeoutEnabled = kind.contextTimeouts
			client := goredis.NewClient(opts)
			b.Cleanup(func() { _ = client.Close() })
			f := ratelimit.NewFailover(ratelimit.NewRedis(client), ratelimit.NewLocal(), &ratelimit.FailoverOpts{Timeout: time.Second})
			benchAllow(b, f)
			b.ReportMetric(float64(f.Fallbacks()), "fallbacks")
		})
	}
}

func BenchmarkLocalAllow(b *testing.B) {
	benchAllow(b, ratelimit.NewLocal())
}

// BenchmarkLocalAllowParallel spreads calls over many keys from all CPUs,
// as many tenants' requests do.
func BenchmarkLocalAllowParallel(b *testing.B) {
	b.ReportAllocs()
	l := ratelimit.NewLocal()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "tenant-" + strconv.Itoa(i)
	}
	var next atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		i := next.Add(1) * 7919
		for pb.Next() {
			i++
			if _, err := l.Allow(ctx, keys[i%uint64(len(keys))], benchLimit, 1); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
