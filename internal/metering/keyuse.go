package metering

// KeyUse records when API keys were last used without a database write
// per request: uses are kept in memory (the latest per key) and written in
// one transaction per tenant every interval. last_used_time is therefore
// accurate to the interval, which is what a key list needs.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// KeyUse collects key uses.
type KeyUse struct {
	db       *db.DB
	logger   *slog.Logger
	now      func() time.Time
	interval time.Duration

	mu   sync.Mutex
	last map[keyID]time.Time
}

type keyID struct{ tenant, id uuid.UUID }

// DefaultKeyUseInterval is how often KeyUse flushes by default.
const DefaultKeyUseInterval = 30 * time.Second

// NewKeyUse returns a KeyUse writing to d every interval (0:
// DefaultKeyUseInterval) once Run runs.
func NewKeyUse(d *db.DB, logger *slog.Logger, interval time.Duration) *KeyUse {
	return &KeyUse{db: d, logger: logger, now: time.Now, interval: cmp.Or(interval, DefaultKeyUseInterval), last: map[keyID]time.Time{}}
}

// Use notes that p's key authenticated a call now. It never blocks on I/O.
func (r *KeyUse) Use(p *tenancy.Principal) {
	if p.Platform || p.KeyID == uuid.Nil {
		return
	}
	r.mu.Lock()
	r.last[keyID{p.TenantID, p.KeyID}] = r.now()
	r.mu.Unlock()
}

// Flush writes the noted uses. Uses that fail to write are kept for the
// next flush unless a newer use replaced them.
func (r *KeyUse) Flush(ctx context.Context) error {
	r.mu.Lock()
	batch := r.last
	r.last = map[keyID]time.Time{}
	r.mu.Unlock()

	byTenant := map[uuid.UUID][]keyID{}
	for k := range batch {
		byTenant[k.tenant] = append(byTenant[k.tenant], k)
	}
	var errs []error
	for tenantID, keys := range byTenant {
		err := r.db.ActAs(ctx, tenantID, func(q *dbsqlc.Queries) error {
			for _, k := range keys {
				if err := q.ApiKeyTouch(ctx, dbsqlc.ApiKeyTouchParams{TenantID: tenantID, ID: k.id, UsedTime: batch[k]}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("record key use for tenant %s: %w", tenantID, err))
			r.mu.Lock()
			for _, k := range keys {
				if _, newer := r.last[k]; !newer {
					r.last[k] = batch[k]
				}
			}
			r.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// Run flushes every interval until ctx ends, then once more.
func (r *KeyUse) Run(ctx context.Context) error {
	flushEvery(ctx, r.interval, r.logger, "key use", r.Flush)
	return nil
}
