package tenant_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/internal/redistest"
	"github.com/quarters-dev/quarters/internal/tenancy"
	"github.com/quarters-dev/quarters/internal/tenant"
)

// source is a tenant "database" whose plan can change, counting loads.
type source struct {
	mu    sync.Mutex
	plan  string
	loads atomic.Int64
	gate  chan struct{} // when set, loads wait on it
}

func (s *source) load(_ context.Context, id uuid.UUID) (tenancy.Tenant, error) {
	s.loads.Add(1)
	s.mu.Lock()
	plan, gate := s.plan, s.gate
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return tenancy.Tenant{ID: id, Active: true, Plan: plan}, nil
}

func (s *source) set(plan string) { s.mu.Lock(); s.plan = plan; s.mu.Unlock() }

func TestCacheLocal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := &source{plan: "free"}
	c := tenant.NewCache(tenant.CacheParams{Load: src.load})
	id := uuid.New()

	for range 3 {
		got, err := c.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "free", got.Plan)
	}
	require.Equal(t, int64(1), src.loads.Load(), "hits must not reload")

	src.set("pro")
	require.NoError(t, c.Invalidate(ctx, id))
	got, err := c.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "pro", got.Plan)
}

// TestCacheCoalescesAndDropsStaleLoads: concurrent misses share one load,
// and a load that an Invalidate overtook is returned but not kept.
func TestCacheCoalescesAndDropsStaleLoads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := &source{plan: "free", gate: make(chan struct{})}
	c := tenant.NewCache(tenant.CacheParams{Load: src.load})
	id := uuid.New()

	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := c.Get(ctx, id)
			require.NoError(t, err)
			require.Equal(t, "free", got.Plan)
		}()
	}
	// The load runs in a goroutine of its own: wait for it to start too.
	require.Eventually(t, func() bool { return c.Waiters(id) == 10 && src.loads.Load() == 1 }, 5*time.Second, time.Millisecond,
		"every caller joins the one load in flight")
	// The plan changes while the (old) load is in flight.
	src.set("pro")
	require.NoError(t, c.Invalidate(ctx, id))
	src.mu.Lock()
	close(src.gate)
	src.gate = nil
	src.mu.Unlock()
	wg.Wait()
	require.Equal(t, int64(1), src.loads.Load(), "concurrent misses share one load")

	got, err := c.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "pro", got.Plan, "the overtaken load was cached")
}

// TestCacheLoadOutlivesCaller: a caller hanging up stops its own wait
// only; the shared load goes on for the others.
func TestCacheLoadOutlivesCaller(t *testing.T) {
	t.Parallel()
	src := &source{plan: "free", gate: make(chan struct{})}
	c := tenant.NewCache(tenant.CacheParams{Load: src.load})
	id := uuid.New()

	first, hangUp := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() { _, err := c.Get(first, id); firstErr <- err }()
	other := make(chan tenancy.Tenant, 1)
	go func() {
		got, err := c.Get(context.Background(), id)
		require.NoError(t, err)
		other <- got
	}()
	require.Eventually(t, func() bool { return c.Waiters(id) == 2 && src.loads.Load() == 1 }, 5*time.Second, time.Millisecond)
	hangUp()
	require.ErrorIs(t, <-firstErr, context.Canceled, "the caller that hung up stops waiting")
	src.mu.Lock()
	close(src.gate)
	src.gate = nil
	src.mu.Unlock()
	require.Equal(t, "free", (<-other).Plan, "the other caller gets the load the first one started")
	require.Equal(t, int64(1), src.loads.Load())
}

// TestCacheAcrossReplicas: two caches sharing Redis; an Invalidate on one
// reaches the other through pub/sub, and records are shared through Redis.
func TestCacheAcrossReplicas(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rs := redistest.New(t)
	src := &source{plan: "free"}
	c1 := tenant.NewCache(tenant.CacheParams{Load: src.load, Redis: rs.Client()})
	c2 := tenant.NewCache(tenant.CacheParams{Load: src.load, Redis: rs.Client()})
	var wg sync.WaitGroup
	for _, c := range []*tenant.Cache{c1, c2} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Run(ctx) }()
	}
	defer wg.Wait()
	defer cancel()
	id := uuid.New()

	_, err := c1.Get(ctx, id)
	require.NoError(t, err)
	got, err := c2.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "free", got.Plan)
	require.Equal(t, int64(1), src.loads.Load(), "replica 2 read replica 1's record from Redis")

	src.set("enterprise")
	require.Eventually(t, func() bool {
		// Subscriptions start asynchronously: invalidate until one lands.
		require.NoError(t, c1.Invalidate(ctx, id))
		got, err := c2.Get(ctx, id)
		require.NoError(t, err)
		return got.Plan == "enterprise"
	}, 5*time.Second, 20*time.Millisecond)
}
