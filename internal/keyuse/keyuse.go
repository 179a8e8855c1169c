// Package keyuse records when API keys were last used without a database
// write per request: uses are kept in memory (the latest per key) and
// written in one transaction per tenant every interval. last_used_time is
// therefore accurate to the interval, which is what a key list needs.
package keyuse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	"github.com/quarters-dev/quarters/internal/flush"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// Recorder collects key uses.
type Recorder struct {
	db     *db.DB
	logger *slog.Logger
	now    func() time.Time

	mu   sync.Mutex
	last map[key]time.Time
}

type key struct{ tenant, id uuid.UUID }

// NewRecorder returns a recorder writing to d.
func NewRecorder(d *db.DB, logger *slog.Logger) *Recorder {
	return &Recorder{db: d, logger: logger, now: time.Now, last: map[key]time.Time{}}
}

// Use notes that p's key authenticated a call now. It never blocks on I/O.
func (r *Recorder) Use(p *tenancy.Principal) {
	if p.Platform || p.KeyID == uuid.Nil {
		return
	}
	r.mu.Lock()
	r.last[key{p.TenantID, p.KeyID}] = r.now()
	r.mu.Unlock()
}

// Flush writes the noted uses. Uses that fail to write are kept for the
// next flush unless a newer use replaced them.
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	batch := r.last
	r.last = map[key]time.Time{}
	r.mu.Unlock()

	byTenant := map[uuid.UUID][]key{}
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
func (r *Recorder) Run(ctx context.Context, interval time.Duration) {
	flush.Every(ctx, interval, r.logger, "key use", r.Flush)
}
