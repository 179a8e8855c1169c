// Package metering keeps per-request bookkeeping off the database: Usage
// counts API calls per tenant, day and procedure (enforcing the plan's
// max_api_calls_per_month and feeding the analytics RPC), KeyUse notes when
// API keys were last used, Cost attributes each call's database time and
// rows to its tenant per day. All count in memory and flush periodically
// (flushEvery), with a last flush when the server stops, so nothing
// counted is lost.
//
// Usage counting happens in memory and is added to PostgreSQL (usage_daily) every
// few seconds, for every tenant at once, by one statement per 10,000 counts
// (db.UsageFlush) that adds, so any number of replicas can flush without
// coordination and without a network round trip per request.
//
// The monthly quota check never reads the database on the request path:
// a tenant's month-to-date total is read once (its first call this month
// on this replica), then counted up locally, and every flush that carries
// the tenant's counts returns the database's new total (all replicas') as
// the next base. Across replicas the quota can overshoot by at most one
// flush interval of traffic, which is noise against a monthly limit.
package metering

import (
	"cmp"
	"context"
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
	// database yet (pending or being flushed).
	unflushed map[monthKey]int64
	// base is each tenant's month-to-date total in the database as last
	// seen: read once, then replaced by what each flush returns. Entries
	// of past months are dropped by the first flush of a month.
	base      map[uuid.UUID]monthTotal
	baseMonth time.Time
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
	month time.Time
	total int64
}

// DefaultUsageInterval is how often Usage flushes by default.
const DefaultUsageInterval = 2 * time.Second

// NewUsage returns a Usage writing to d every interval (0:
// DefaultUsageInterval) once Run runs.
func NewUsage(d *db.DB, logger *slog.Logger, interval time.Duration) *Usage {
	return &Usage{
		db: d, logger: logger, now: time.Now, interval: cmp.Or(interval, DefaultUsageInterval),
		pending: map[key]counts{}, unflushed: map[monthKey]int64{}, base: map[uuid.UUID]monthTotal{},
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

// MonthToDate is the tenant's request count this (UTC) month: the
// database's as last seen plus this replica's unflushed counts. Only a
// tenant's first call of the month on this replica reads the database.
func (r *Usage) MonthToDate(ctx context.Context, tenantID uuid.UUID) (int64, error) {
	start := monthStart(r.now())
	mk := monthKey{tenantID, start}
	r.mu.Lock()
	m, ok := r.base[tenantID]
	if ok && m.month.Equal(start) {
		total := m.total + r.unflushed[mk]
		r.mu.Unlock()
		return total, nil
	}
	r.mu.Unlock()
	var total int64
	err := r.db.ActAs(ctx, tenantID, func(q *dbsqlc.Queries) error {
		var err error
		total, err = q.UsageMonthTotal(ctx, dbsqlc.UsageMonthTotalParams{TenantID: tenantID, MonthStart: start})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("month-to-date usage: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// A flush that finished meanwhile set a base at least as fresh as
	// this read (which may have missed the flush's counts while they
	// were no longer unflushed): keep it.
	if m, ok := r.base[tenantID]; !ok || !m.month.Equal(start) {
		r.base[tenantID] = monthTotal{month: start, total: total}
	}
	return r.base[tenantID].total + r.unflushed[mk], nil
}

// Flush adds everything counted so far to the database in one
// transaction (db.UsageFlush: a statement per 10,000 counts, every tenant
// at once). Counts that fail to flush are kept for the next try: nothing
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
		r.pending = make(map[key]counts, len(batch))
	} else {
		batch = map[key]counts{}
		for k, c := range r.pending {
			if k.tenant == tenant {
				batch[k] = c
				delete(r.pending, k)
			}
		}
		if len(batch) == 0 {
			r.mu.Unlock()
			return nil
		}
	}
	r.mu.Unlock()

	rows := make([]db.UsageCount, 0, len(batch))
	for k, c := range batch {
		rows = append(rows, db.UsageCount{TenantID: k.tenant, Day: k.day, Procedure: k.procedure, Requests: c.requests, RateLimited: c.rateLimited})
	}
	start := monthStart(r.now())
	totals, err := r.db.UsageFlush(ctx, rows, start)

	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		for k, c := range batch {
			p := r.pending[k]
			r.pending[k] = counts{requests: p.requests + c.requests, rateLimited: p.rateLimited + c.rateLimited}
		}
		return fmt.Errorf("flush usage of %d tenant-days: %w", len(batch), err)
	}
	for k, c := range batch {
		mk := monthKey{k.tenant, monthStart(k.day)}
		if r.unflushed[mk] -= c.requests; r.unflushed[mk] <= 0 {
			delete(r.unflushed, mk)
		}
	}
	if !r.baseMonth.Equal(start) {
		// A new month: last month's bases would only take memory.
		clear(r.base)
		r.baseMonth = start
	}
	for id, total := range totals {
		r.base[id] = monthTotal{month: start, total: total}
	}
	return nil
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
