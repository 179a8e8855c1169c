package auth

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
)

// KeyCacheParams are NewKeyCache's inputs.
type KeyCacheParams struct {
	// Lookup reads a key from the database on a miss.
	Lookup LookupFunc
	// TTL bounds how long a key is served from memory (default 1 minute):
	// a safety net, since revocations and suspensions arrive through
	// DropTenant at once.
	TTL time.Duration
	// MaxEntries caps memory (default 100,000 keys); when full, the cache
	// starts over.
	MaxEntries int
	// Now is the clock, for tests; nil is time.Now.
	Now func() time.Time
}

// KeyCache keeps live API keys in memory, so a warm key costs no database
// round trip. Only keys the database returned as live are kept (a made-up
// key always reaches the database, once its checksum passes), never past
// their expire_time. Revoking a key or changing its tenant must be
// followed by DropTenant on every replica: the router wires it to the
// tenant cache's invalidation, which Redis pub/sub carries to all of them.
type KeyCache struct {
	p  KeyCacheParams
	mu sync.Mutex
	m  map[[32]byte]keyEntry
	// gen counts drops, so a lookup that raced one is not stored.
	gen uint64
}

type keyEntry struct {
	rec     *Record
	expires time.Time
}

// NewKeyCache returns an empty cache.
func NewKeyCache(p KeyCacheParams) *KeyCache {
	if p.TTL <= 0 {
		p.TTL = time.Minute
	}
	if p.MaxEntries <= 0 {
		p.MaxEntries = 100_000
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	return &KeyCache{p: p, m: map[[32]byte]keyEntry{}}
}

// Lookup is a LookupFunc: the cached record, else the database's.
func (c *KeyCache) Lookup(ctx context.Context, hash [32]byte) (*Record, error) {
	now := c.p.Now()
	c.mu.Lock()
	e, ok := c.m[hash]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.rec, nil
	}
	rec, err := c.p.Lookup(ctx, hash)
	if err != nil {
		return nil, err
	}
	expires := now.Add(c.p.TTL)
	if rec.ExpireTime != nil && rec.ExpireTime.Before(expires) {
		expires = *rec.ExpireTime
	}
	c.mu.Lock()
	if c.gen == gen {
		if len(c.m) >= c.p.MaxEntries {
			clear(c.m)
		}
		c.m[hash] = keyEntry{rec: rec, expires: expires}
	}
	c.mu.Unlock()
	return rec, nil
}

// DropTenant forgets the keys of tenant id; uuid.Nil forgets every key.
func (c *KeyCache) DropTenant(id uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if id == uuid.Nil {
		clear(c.m)
		return
	}
	for h, e := range c.m {
		if e.rec.TenantID == id {
			delete(c.m, h)
		}
	}
}
