package tenant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/internal/tenancy"
	"github.com/redis/go-redis/v9"
)

// LoadFunc reads a tenant's record from the database.
type LoadFunc func(ctx context.Context, id uuid.UUID) (tenancy.Tenant, error)

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
// While Redis is unreachable each replica keeps serving the records it
// holds, and reloads each from the database when its TTL ends: a change
// made meanwhile on another replica reaches this one within the TTL (60 s
// by default), the same bound as without Redis. Nothing is dropped in bulk
// during the outage; when the subscription is back, everything is dropped
// once, since invalidations may have been missed, and the invalidations
// this replica could not send are sent then.
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
	// pending are tenants whose invalidation could not be sent; they are
	// sent again when the subscription is back.
	pending map[uuid.UUID]struct{}

	// down is set by Run while the subscription is lost: Redis is then
	// neither read nor written per call, so an outage costs calls nothing.
	down atomic.Bool
	// subscribed is set once Run's subscription is confirmed.
	subscribed atomic.Bool

	// hits, misses and dbLoads are Stats' counts.
	hits, misses, dbLoads atomic.Int64
}

// CacheStats are a cache's counts since it was made, for /metrics.
type CacheStats struct {
	// Hits were answered from this process's memory; Misses were not
	// (they joined or started a load, from Redis or the database).
	Hits, Misses int64
	// Loads read the database (a Redis hit is a miss but not a load).
	Loads int64
}

// Stats returns the cache's counts so far.
func (c *Cache) Stats() CacheStats {
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Loads: c.dbLoads.Load()}
}

// loadDB reads the database, counting it.
func (c *Cache) loadDB(ctx context.Context, id uuid.UUID) (tenancy.Tenant, error) {
	c.dbLoads.Add(1)
	return c.p.Load(ctx, id)
}

type entry struct {
	t       tenancy.Tenant
	expires time.Time
}

type load struct {
	done  chan struct{}
	t     tenancy.Tenant
	err   error
	stale bool // an Invalidate arrived while loading
	// waiters counts the callers that joined the load (for tests).
	waiters int
}

// invalidationChannel is the pub/sub channel; messages are tenant ids.
const invalidationChannel = "quarters:tenant:invalidate"

// DefaultTTL is CacheParams.TTL's default: how long a record is served
// from memory, and so how stale another replica may be without Redis.
const DefaultTTL = time.Minute

// NewCache returns a cache. With Redis, call Run to receive invalidations.
func NewCache(p CacheParams) *Cache {
	if p.TTL <= 0 {
		p.TTL = DefaultTTL
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	return &Cache{p: p, local: map[uuid.UUID]entry{}, loads: map[uuid.UUID]*load{}, pending: map[uuid.UUID]struct{}{}}
}

// Shared reports whether invalidations reach every replica at once: Redis
// is configured and the subscription is up. False without Redis, and
// during a Redis outage.
func (c *Cache) Shared() bool { return c.p.Redis != nil && c.subscribed.Load() && !c.down.Load() }

// MaxStale is the longest another replica may serve a tenant's previous
// state after a change whose invalidation did not reach it (no Redis, or
// Redis down): the TTL, after which every cached record and API key is
// read from the database again.
func (c *Cache) MaxStale() time.Duration { return c.p.TTL }

// Get returns the tenant's record from this process, else Redis, else the
// database. Errors are the loader's (db.ErrNotFound for an unknown tenant).
//
// Concurrent misses share one load, which runs detached from every
// caller's cancellation (keeping ctx's values) and is bounded by
// loadTimeout: a caller that hangs up stops waiting, but the load goes on
// for the others, instead of failing them all with its context's error.
func (c *Cache) Get(ctx context.Context, id uuid.UUID) (tenancy.Tenant, error) {
	c.mu.Lock()
	if e, ok := c.local[id]; ok && time.Now().Before(e.expires) {
		c.mu.Unlock()
		c.hits.Add(1)
		return e.t, nil
	}
	c.misses.Add(1)
	l, ok := c.loads[id]
	if !ok {
		l = &load{done: make(chan struct{})}
		c.loads[id] = l
		go c.load(context.WithoutCancel(ctx), id, l)
	}
	l.waiters++
	c.mu.Unlock()
	select {
	case <-l.done:
		return l.t, l.err
	case <-ctx.Done():
		return tenancy.Tenant{}, ctx.Err()
	}
}

// loadTimeout bounds a shared load, which no caller's deadline bounds.
const loadTimeout = 30 * time.Second

func (c *Cache) load(ctx context.Context, id uuid.UUID, l *load) {
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	t, err := c.fetch(ctx, id)
	c.mu.Lock()
	l.t, l.err = t, err
	delete(c.loads, id)
	// A load that raced an Invalidate is still returned to its callers
	// (it was current when they asked) but not kept.
	if l.err == nil && !l.stale {
		c.local[id] = entry{t: l.t, expires: time.Now().Add(c.p.TTL)}
	}
	c.mu.Unlock()
	close(l.done)
}

// GetActive is Get for calls that act on a tenant before any credential
// has bound one (sign-in, refresh, invitations): an unknown tenant is
// notFound(), a suspended one SuspendedError(), one whose deletion is
// pending DeletionPendingError (unless the call's rule says
// while_deleting: DeletingAllowed), other failures wrapped.
func (c *Cache) GetActive(ctx context.Context, id uuid.UUID, notFound func() error) (tenancy.Tenant, error) {
	t, err := c.Get(ctx, id)
	if errors.Is(err, db.ErrNotFound) {
		return t, notFound()
	}
	if err != nil {
		return t, fmt.Errorf("load tenant %s: %w", id, err)
	}
	return t, Admit(t, DeletingAllowed(ctx))
}

func (c *Cache) fetch(ctx context.Context, id uuid.UUID) (tenancy.Tenant, error) {
	if c.p.Redis == nil || c.down.Load() {
		return c.loadDB(ctx, id)
	}
	gen, err := c.p.Redis.Get(ctx, genKey(id)).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		// Redis trouble must not take the API down: read the database.
		// Run logs the outage once; this is one of its calls.
		c.p.Logger.DebugContext(ctx, "tenant cache: redis unavailable; reading the database", "error", err)
		return c.loadDB(ctx, id)
	}
	key := recordKey(id, gen)
	if raw, err := c.p.Redis.Get(ctx, key).Bytes(); err == nil {
		var t tenancy.Tenant
		if json.Unmarshal(raw, &t) == nil {
			return t, nil
		}
	}
	t, err := c.loadDB(ctx, id)
	if err != nil {
		return t, err
	}
	if raw, err := json.Marshal(t); err == nil {
		if err := c.p.Redis.Set(ctx, key, raw, c.p.TTL).Err(); err != nil {
			c.p.Logger.DebugContext(ctx, "tenant cache: store in redis", "error", err)
		}
	}
	return t, nil
}

// ErrNotShared is returned (wrapped) by Invalidate when the invalidation
// reached this replica only: Redis is down. It is sent again when the
// subscription is back; meanwhile other replicas notice within MaxStale.
var ErrNotShared = errors.New("invalidation not shared with other replicas")

// Invalidate drops the tenant's record in this process and, with Redis, on
// every replica. Call it after committing any change to the tenant. It
// returns an error wrapping ErrNotShared when the other replicas could not
// be told; with Redis known to be down it does not even try, so a change
// made during an outage is answered at once.
func (c *Cache) Invalidate(ctx context.Context, id uuid.UUID) error {
	c.drop(id)
	if c.p.Redis == nil {
		return nil
	}
	if c.down.Load() {
		c.postpone(id)
		return fmt.Errorf("invalidate tenant %s: %w: redis is unreachable", id, ErrNotShared)
	}
	if err := c.publish(ctx, id); err != nil {
		c.postpone(id)
		return fmt.Errorf("invalidate tenant %s: %w: %w", id, ErrNotShared, err)
	}
	return nil
}

// publish moves the tenant's generation on, orphaning any record stored
// under the old one, and tells every replica to drop its copy.
func (c *Cache) publish(ctx context.Context, id uuid.UUID) error {
	if err := c.p.Redis.Incr(ctx, genKey(id)).Err(); err != nil {
		return err
	}
	return c.p.Redis.Publish(ctx, invalidationChannel, id.String()).Err()
}

// postpone remembers an invalidation to send when Redis is back.
func (c *Cache) postpone(id uuid.UUID) {
	c.mu.Lock()
	c.pending[id] = struct{}{}
	c.mu.Unlock()
}

// sendPending sends the invalidations that failed during the outage.
func (c *Cache) sendPending(ctx context.Context) {
	c.mu.Lock()
	ids := make([]uuid.UUID, 0, len(c.pending))
	for id := range c.pending {
		ids = append(ids, id)
	}
	clear(c.pending)
	c.mu.Unlock()
	for _, id := range ids {
		if err := c.publish(ctx, id); err != nil {
			c.postpone(id)
		}
	}
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

// Backoff of Run's resubscription after the subscription fails.
const (
	resubscribeMin = 100 * time.Millisecond
	resubscribeMax = 5 * time.Second
)

// Run receives invalidations from other replicas until ctx ends. Without
// Redis it returns at once.
//
// When the subscription fails (Redis down), Run logs it once, keeps every
// cached record (each still expires after the TTL and is reloaded from the
// database), and retries with exponential backoff and jitter, quietly.
// When the subscription is established again it drops everything cached
// once (an invalidation may have been missed), sends the invalidations
// this replica could not send, and logs the recovery once.
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
	backoff := resubscribeMin
	var downSince time.Time
	for {
		msg, err := sub.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !c.down.Swap(true) {
				downSince = time.Now()
				c.p.Logger.WarnContext(ctx, "tenant cache: redis subscription lost; serving cached records, each reloaded from the database when its TTL ends, and retrying quietly",
					"error", err, "max_stale", c.p.TTL.String())
			}
			// go-redis reconnects on the next Receive; full jitter keeps
			// replicas from reconnecting in step.
			wait := resubscribeMin + time.Duration(rand.Int64N(int64(backoff)))
			backoff = min(2*backoff, resubscribeMax)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			backoff = resubscribeMin
			// Whatever was published while this replica was not listening
			// is lost: start over, once.
			c.dropAll()
			c.subscribed.Store(true)
			if c.down.Swap(false) {
				c.sendPending(ctx)
				c.p.Logger.InfoContext(ctx, "tenant cache: redis subscription restored; dropped every cached record once",
					"down_for", time.Since(downSince).Round(time.Millisecond).String())
			}
		case *redis.Message:
			if id, err := uuid.Parse(m.Payload); err == nil {
				c.drop(id)
			}
		}
	}
}

func genKey(id uuid.UUID) string { return "quarters:tenant:gen:" + id.String() }

// recordSchema versions the shape of a stored tenancy.Tenant. Bump it whenever
// tenancy.Tenant gains a field that matters, so replicas of a new build never read
// a record an old build stored without it (during a rolling upgrade, say:
// an old record has no Members, and every access token would be refused).
const recordSchema = 3

func recordKey(id uuid.UUID, gen int64) string {
	return fmt.Sprintf("quarters:tenant:rec:v%d:%s:%d", recordSchema, id, gen)
}

// invalidateTimeout bounds Committed's invalidation. It runs after the
// commit, detached from the request, so a caller hanging up cannot leave
// the change unannounced. A healthy Redis answers in a millisecond; one
// that stops answering costs the call this much once, until Run notices
// the outage and Invalidate stops trying.
const invalidateTimeout = time.Second

// HeaderPropagationDelay is set on the response to a change that other
// replicas could not be told about at once (Redis down): they may serve
// the previous state (a revoked key, a removed member's token, the old
// plan) for up to this many seconds. Absent: every replica was told.
const HeaderPropagationDelay = "Quarters-Propagation-Delay"

// Committed invalidates the tenant after a committed change that other
// replicas must see at once (a plan, a suspension, a revoked key, a
// member's new role). The change stands whatever happens here, and this
// replica has dropped its copy. If the others could not be told (Redis
// down), the call still succeeds (the change was made) but its response
// carries HeaderPropagationDelay, the seconds they may serve the previous
// state (MaxStale: their copies expire), and a warning naming lingering is
// logged; the invalidation is sent again once Redis is back. It returns
// nil; the error result is kept for callers' sake.
func (c *Cache) Committed(ctx context.Context, id uuid.UUID, lingering string) error {
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), invalidateTimeout)
	defer cancel()
	if err := c.Invalidate(ictx, id); err != nil {
		secs := int64(math.Ceil(c.p.TTL.Seconds()))
		c.p.Logger.WarnContext(ctx, "tenant change saved, but other replicas could not be told: they may serve "+lingering+" until their copies expire",
			"tenant_id", id, "max_stale", c.p.TTL.String(), "error", err)
		if info, ok := connect.CallInfoForHandlerContext(ctx); ok {
			info.ResponseHeader().Set(HeaderPropagationDelay, strconv.FormatInt(secs, 10))
		}
	}
	return nil
}
