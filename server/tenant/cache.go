package tenant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// LoadFunc reads a tenant's record from the database.
type LoadFunc func(ctx context.Context, id uuid.UUID) (Tenant, error)

// CacheParams are NewCache's inputs.
type CacheParams struct {
	Load LoadFunc
	// Redis, when set, shares records between replicas and carries
	// invalidations to all of them (pub/sub). Nil: this process only.
	Redis  redis.UniversalClient
	Logger *slog.Logger
	// TTL is a safety net for a lost invalidation (default 1 minute);
	// changes normally reach every replica through Invalidate.
	TTL time.Duration
}

// Cache holds tenant records in process (and in Redis when configured).
// A change to a tenant (plan, override, suspension) is followed by
// Invalidate, which drops the record everywhere at once: with Redis, every
// replica hears it over pub/sub within milliseconds, not after a TTL.
//
// Shared records are versioned by a per-tenant generation number that
// Invalidate increments. A replica that read the database just before a
// change and stores its (stale) copy afterwards stores it under the old
// generation, which nobody reads any more, so a race cannot resurrect it.
type Cache struct {
	p     CacheParams
	mu    sync.Mutex
	local map[uuid.UUID]entry
	// loads coalesces concurrent misses for one tenant.
	loads map[uuid.UUID]*load
	// onDrop are told of every drop (uuid.Nil: everything).
	onDrop []func(uuid.UUID)
}

type entry struct {
	t       Tenant
	expires time.Time
}

type load struct {
	done  chan struct{}
	t     Tenant
	err   error
	stale bool // an Invalidate arrived while loading
}

// invalidationChannel is the pub/sub channel; messages are tenant ids.
const invalidationChannel = "quarters:tenant:invalidate"

// NewCache returns a cache. With Redis, call Run to receive invalidations.
func NewCache(p CacheParams) *Cache {
	if p.TTL <= 0 {
		p.TTL = time.Minute
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	return &Cache{p: p, local: map[uuid.UUID]entry{}, loads: map[uuid.UUID]*load{}}
}

// Get returns the tenant's record from this process, else Redis, else the
// database. Errors are the loader's (pgx.ErrNoRows for an unknown tenant).
func (c *Cache) Get(ctx context.Context, id uuid.UUID) (Tenant, error) {
	c.mu.Lock()
	if e, ok := c.local[id]; ok && time.Now().Before(e.expires) {
		c.mu.Unlock()
		return e.t, nil
	}
	if l, ok := c.loads[id]; ok {
		c.mu.Unlock()
		select {
		case <-l.done:
			return l.t, l.err
		case <-ctx.Done():
			return Tenant{}, ctx.Err()
		}
	}
	l := &load{done: make(chan struct{})}
	c.loads[id] = l
	c.mu.Unlock()

	l.t, l.err = c.fetch(ctx, id)
	c.mu.Lock()
	delete(c.loads, id)
	// A load that raced an Invalidate is still returned to its callers
	// (it was current when they asked) but not kept.
	if l.err == nil && !l.stale {
		c.local[id] = entry{t: l.t, expires: time.Now().Add(c.p.TTL)}
	}
	c.mu.Unlock()
	close(l.done)
	return l.t, l.err
}

// GetActive is Get for calls that act on a tenant before any credential
// has bound one (sign-in, refresh, invitations): an unknown tenant is
// notFound(), a suspended one SuspendedError(), other failures wrapped.
func (c *Cache) GetActive(ctx context.Context, id uuid.UUID, notFound func() error) (Tenant, error) {
	t, err := c.Get(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, notFound()
	}
	if err != nil {
		return t, fmt.Errorf("load tenant %s: %w", id, err)
	}
	if !t.Active {
		return t, SuspendedError()
	}
	return t, nil
}

func (c *Cache) fetch(ctx context.Context, id uuid.UUID) (Tenant, error) {
	if c.p.Redis == nil {
		return c.p.Load(ctx, id)
	}
	gen, err := c.p.Redis.Get(ctx, genKey(id)).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		// Redis trouble must not take the API down: read the database.
		c.p.Logger.WarnContext(ctx, "tenant cache: redis unavailable", "error", err)
		return c.p.Load(ctx, id)
	}
	key := recordKey(id, gen)
	if raw, err := c.p.Redis.Get(ctx, key).Bytes(); err == nil {
		var t Tenant
		if json.Unmarshal(raw, &t) == nil {
			return t, nil
		}
	}
	t, err := c.p.Load(ctx, id)
	if err != nil {
		return t, err
	}
	if raw, err := json.Marshal(t); err == nil {
		if err := c.p.Redis.Set(ctx, key, raw, c.p.TTL).Err(); err != nil {
			c.p.Logger.WarnContext(ctx, "tenant cache: store in redis", "error", err)
		}
	}
	return t, nil
}

// Invalidate drops the tenant's record in this process and, with Redis, on
// every replica. Call it after committing any change to the tenant.
func (c *Cache) Invalidate(ctx context.Context, id uuid.UUID) error {
	c.drop(id)
	if c.p.Redis == nil {
		return nil
	}
	if err := c.p.Redis.Incr(ctx, genKey(id)).Err(); err != nil {
		return fmt.Errorf("invalidate tenant %s: %w", id, err)
	}
	if err := c.p.Redis.Publish(ctx, invalidationChannel, id.String()).Err(); err != nil {
		return fmt.Errorf("publish tenant invalidation: %w", err)
	}
	return nil
}

// OnDrop registers fn to be called whenever this replica drops a tenant's
// record (its id) or all of them (uuid.Nil): caches of things that belong
// to a tenant, such as API keys, follow the tenant's invalidations. Call it
// before serving; fn must not block.
func (c *Cache) OnDrop(fn func(id uuid.UUID)) {
	c.mu.Lock()
	c.onDrop = append(c.onDrop, fn)
	c.mu.Unlock()
}

func (c *Cache) drop(id uuid.UUID) {
	c.mu.Lock()
	delete(c.local, id)
	if l, ok := c.loads[id]; ok {
		l.stale = true
	}
	fns := c.onDrop
	c.mu.Unlock()
	for _, fn := range fns {
		fn(id)
	}
}

func (c *Cache) dropAll() {
	c.mu.Lock()
	clear(c.local)
	for _, l := range c.loads {
		l.stale = true
	}
	fns := c.onDrop
	c.mu.Unlock()
	for _, fn := range fns {
		fn(uuid.Nil)
	}
}

// Run receives invalidations from other replicas until ctx ends. Whenever
// the subscription is (re)established, everything cached is dropped: an
// invalidation may have been missed while disconnected. Without Redis it
// returns at once.
func (c *Cache) Run(ctx context.Context) error {
	if c.p.Redis == nil {
		return nil
	}
	sub := c.p.Redis.Subscribe(ctx, invalidationChannel)
	// Receive blocks on the socket and does not watch ctx: closing the
	// subscription is what ends it at shutdown.
	stop := context.AfterFunc(ctx, func() { _ = sub.Close() })
	defer stop()
	defer sub.Close()
	for {
		msg, err := sub.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// go-redis reconnects on the next Receive; back off a little.
			c.p.Logger.WarnContext(ctx, "tenant cache: subscription", "error", err)
			c.dropAll()
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			c.dropAll()
		case *redis.Message:
			if id, err := uuid.Parse(m.Payload); err == nil {
				c.drop(id)
			}
		}
	}
}

func genKey(id uuid.UUID) string { return "quarters:tenant:gen:" + id.String() }

// recordSchema versions the shape of a stored Tenant. Bump it whenever
// Tenant gains a field that matters, so replicas of a new build never read
// a record an old build stored without it (during a rolling upgrade, say:
// an old record has no Members, and every access token would be refused).
const recordSchema = 2

func recordKey(id uuid.UUID, gen int64) string {
	return fmt.Sprintf("quarters:tenant:rec:v%d:%s:%d", recordSchema, id, gen)
}

// invalidateTimeout bounds Committed's invalidation. It runs after the
// commit, detached from the request, so a caller hanging up cannot leave
// the change unannounced.
const invalidateTimeout = 5 * time.Second

// Committed invalidates the tenant after a committed change that other
// replicas must see at once (a plan, a suspension, a revoked key, a
// member's new role). On failure the change stands and this replica has
// already dropped its copy, but others may serve the previous state until
// their copy expires: the failure is logged, and returned as UNAVAILABLE
// saying so, naming what may linger. Retrying the call is harmless: it
// sends the invalidation again.
func (c *Cache) Committed(ctx context.Context, id uuid.UUID, lingering string) error {
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), invalidateTimeout)
	defer cancel()
	if err := c.Invalidate(ictx, id); err != nil {
		c.p.Logger.ErrorContext(ctx, "tenant cache invalidation failed after commit", "tenant_id", id, "error", err)
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf(
			"the change was saved, but other servers could not be told yet: they may still serve %s until their cached copy expires (%v at most); retrying the call is harmless",
			lingering, c.p.TTL))
	}
	return nil
}
