// Package metering keeps per-request bookkeeping off the database: Usage
// counts API calls per tenant, day and procedure (enforcing the plan's
// max_api_calls_per_month and feeding the analytics RPC), KeyUse notes when
// API keys were last used. Both count in memory and flush periodically
// (flushEvery), with a last flush when the server stops, so nothing
// counted is lost.
//
// Usage counting happens in memory and is added to PostgreSQL (usage_daily) every
// few seconds with an upsert that adds, so any number of replicas can flush
// without coordination and without a network round trip per request. A
// replica's monthly total is the database's (cached briefly) plus what it
// has not flushed yet; across replicas the quota can overshoot by at most
// one flush interval of traffic, which is noise against a monthly limit.
package metering

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	"github.com/quarters-dev/quarters/internal/intercept"
	"github.com/quarters-dev/quarters/internal/quota"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// Usage counts calls and flushes the counts to the database.
type Usage struct {
	db       *db.DB
	logger   *slog.Logger
	now      func() time.Time
	interval time.Duration

	mu      sync.Mutex
	pending map[key]counts
	// unflushed is each tenant's requests per month that are not in the
	// database yet (pending or being flushed), so the per-request quota
	// check is a map lookup, not a scan.
	unflushed map[monthKey]int64
	month     map[uuid.UUID]monthTotal
}

type monthKey struct {
	tenant uuid.UUID
	month  time.Time
}

type key struct {
	tenant    uuid.UUID
	day       time.Time // UTC midnight
	procedure string
}

type counts struct{ requests, rateLimited int64 }

type monthTotal struct {
	month   time.Time
	total   int64
	expires time.Time
}

// monthTTL is how long a month-to-date total read from the database is
// reused before asking again.
const monthTTL = 5 * time.Second

// DefaultUsageInterval is how often Usage flushes by default.
const DefaultUsageInterval = 2 * time.Second

// NewUsage returns a Usage writing to d every interval (0:
// DefaultUsageInterval) once Run runs.
func NewUsage(d *db.DB, logger *slog.Logger, interval time.Duration) *Usage {
	return &Usage{
		db: d, logger: logger, now: time.Now, interval: cmp.Or(interval, DefaultUsageInterval),
		pending: map[key]counts{}, unflushed: map[monthKey]int64{}, month: map[uuid.UUID]monthTotal{},
	}
}

func day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func monthStart(t time.Time) time.Time {
	y, m, _ := t.UTC().Date()
	return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
}

// Record counts one call of procedure by tenant; rateLimited calls are
// counted apart (they do not count against the monthly quota).
func (r *Usage) Record(tenantID uuid.UUID, procedure string, rateLimited bool) {
	now := r.now()
	k := key{tenant: tenantID, day: day(now), procedure: procedure}
	r.mu.Lock()
	c := r.pending[k]
	if rateLimited {
		c.rateLimited++
	} else {
		c.requests++
		r.unflushed[monthKey{tenantID, monthStart(now)}]++
	}
	r.pending[k] = c
	r.mu.Unlock()
}

// MonthToDate is the tenant's request count this (UTC) month: flushed
// counts from the database plus this replica's unflushed ones.
func (r *Usage) MonthToDate(ctx context.Context, tenantID uuid.UUID) (int64, error) {
	now := r.now()
	start := monthStart(now)
	r.mu.Lock()
	m, ok := r.month[tenantID]
	r.mu.Unlock()
	if !ok || !m.month.Equal(start) || now.After(m.expires) {
		var total int64
		err := r.db.ActAs(ctx, tenantID, func(q *dbsqlc.Queries) error {
			var err error
			total, err = q.UsageMonthTotal(ctx, dbsqlc.UsageMonthTotalParams{TenantID: tenantID, MonthStart: start})
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("month-to-date usage: %w", err)
		}
		m = monthTotal{month: start, total: total, expires: now.Add(monthTTL)}
		r.mu.Lock()
		r.month[tenantID] = m
		r.mu.Unlock()
	}
	r.mu.Lock()
	total := m.total + r.unflushed[monthKey{tenantID, start}]
	r.mu.Unlock()
	return total, nil
}

// Flush adds everything counted so far to the database, one transaction
// per tenant. Counts that fail to flush are kept for the next try: nothing
// is lost or counted twice.
func (r *Usage) Flush(ctx context.Context) error { return r.flush(ctx, uuid.Nil) }

// FlushTenant is Flush for one tenant's counts only: what a tenant's own
// request (GetUsage) may write, so one tenant's call never carries every
// other tenant's pending counts.
func (r *Usage) FlushTenant(ctx context.Context, id uuid.UUID) error { return r.flush(ctx, id) }

// flush writes the pending counts of tenant only (uuid.Nil: of all).
func (r *Usage) flush(ctx context.Context, tenant uuid.UUID) error {
	r.mu.Lock()
	if len(r.pending) == 0 {
		r.mu.Unlock()
		return nil
	}
	batch := r.pending
	if tenant == uuid.Nil {
		r.pending = map[key]counts{}
	} else {
		batch = map[key]counts{}
		for k, c := range r.pending {
			if k.tenant == tenant {
				batch[k] = c
				delete(r.pending, k)
			}
		}
	}
	r.mu.Unlock()

	byTenant := map[uuid.UUID][]key{}
	for k := range batch {
		byTenant[k.tenant] = append(byTenant[k.tenant], k)
	}
	var errs []error
	for id, keys := range byTenant {
		err := r.db.ActAs(ctx, id, func(q *dbsqlc.Queries) error {
			for _, k := range keys {
				c := batch[k]
				if err := q.UsageAdd(ctx, dbsqlc.UsageAddParams{
					TenantID: id, Day: k.day, Procedure: k.procedure, Requests: c.requests, RateLimited: c.rateLimited,
				}); err != nil {
					return err
				}
			}
			return nil
		})
		r.mu.Lock()
		for _, k := range keys {
			c := batch[k]
			if err != nil {
				p := r.pending[k]
				r.pending[k] = counts{requests: p.requests + c.requests, rateLimited: p.rateLimited + c.rateLimited}
				continue
			}
			mk := monthKey{id, monthStart(k.day)}
			if r.unflushed[mk] -= c.requests; r.unflushed[mk] <= 0 {
				delete(r.unflushed, mk)
			}
		}
		if err == nil {
			// The database now holds these counts; read it afresh.
			delete(r.month, id)
		}
		r.mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("flush usage of tenant %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// Run flushes every interval until ctx ends, then once more.
func (r *Usage) Run(ctx context.Context) error {
	flushEvery(ctx, r.interval, r.logger, "usage", r.Flush)
	return nil
}

// NewInterceptor counts every tenant call and refuses calls beyond the
// plan's max_api_calls_per_month: RESOURCE_EXHAUSTED with a QuotaFailure.
func NewInterceptor(r *Usage) connect.Interceptor {
	i := &interceptor{r: r}
	return intercept.Before(func(ctx context.Context, spec connect.Spec) (context.Context, error) {
		return ctx, i.check(ctx, spec.Procedure)
	})
}

type interceptor struct{ r *Usage }

func (i *interceptor) check(ctx context.Context, procedure string) error {
	t, ok := tenancy.FromContext(ctx)
	if !ok {
		return nil
	}
	used, err := i.r.MonthToDate(ctx, t.ID)
	if err != nil {
		return err
	}
	if used >= t.Limits.MaxAPICallsPerMonth {
		return quota.Exceeded(t, "max_api_calls_per_month", t.Limits.MaxAPICallsPerMonth, "API calls per month",
			"the count restarts on the 1st of the month (UTC); upgrade the plan for more")
	}
	i.r.Record(t.ID, procedure, false)
	return nil
}
