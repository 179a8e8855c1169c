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
	"github.com/quarters-dev/quarters/internal/cost"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// Cost attributes what calls cost the database to their tenant, per UTC
// day: calls, database time and rows (measured by package cost). It counts
// in memory on the request path, with no statement of its own, and adds
// the counts to tenant_costs_daily every interval, for every tenant at
// once (db.CostFlush), like Usage. A call is counted on the day it
// finished.
type Cost struct {
	db       *db.DB
	logger   *slog.Logger
	now      func() time.Time
	interval time.Duration

	// flushMu makes flushes take turns, so once FlushTenant returns,
	// every count of the tenant recorded before it is in the database,
	// even those a periodic flush had in flight.
	flushMu sync.Mutex
	mu      sync.Mutex
	pending map[costKey]costCounts
}

type costKey struct {
	tenant uuid.UUID
	day    time.Time // UTC midnight
}

type costCounts struct {
	calls  int64
	dbTime time.Duration
	rows   int64
}

func (c costCounts) plus(o costCounts) costCounts {
	return costCounts{calls: c.calls + o.calls, dbTime: c.dbTime + o.dbTime, rows: c.rows + o.rows}
}

// DefaultCostInterval is how often Cost flushes by default.
const DefaultCostInterval = 10 * time.Second

// CostOpts adjust NewCost; nil means defaults.
type CostOpts struct {
	// Interval is how often the counts are flushed (default
	// DefaultCostInterval).
	Interval time.Duration
	// NowFunc is the clock that dates calls (default time.Now): tests
	// cross a day boundary with it.
	NowFunc func() time.Time
}

// NewCost returns a Cost writing to d once Run runs.
func NewCost(d *db.DB, logger *slog.Logger, opts *CostOpts) *Cost {
	if opts == nil {
		opts = &CostOpts{}
	}
	c := &Cost{
		db: d, logger: logger, now: opts.NowFunc, interval: cmp.Or(opts.Interval, DefaultCostInterval),
		pending: map[costKey]costCounts{},
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Record counts one call of tenant that took dbTime and rows in the
// database, on the (UTC) day it is now. It allocates only for a tenant's
// first call of a day since the last flush.
func (c *Cost) Record(tenant uuid.UUID, dbTime time.Duration, rows int64) {
	k := costKey{tenant: tenant, day: day(c.now())}
	c.mu.Lock()
	c.pending[k] = c.pending[k].plus(costCounts{calls: 1, dbTime: dbTime, rows: rows})
	c.mu.Unlock()
}

// Flush adds everything counted so far to the database in one
// transaction. Counts that fail to flush are kept for the next try:
// nothing is lost or counted twice. The flush's statements are no
// tenant's cost, even when ctx is a call's.
func (c *Cost) Flush(ctx context.Context) error { return c.flush(ctx, uuid.Nil) }

// FlushTenant is Flush for one tenant's counts only: what a tenant's own
// request (GetCost) may write.
func (c *Cost) FlushTenant(ctx context.Context, id uuid.UUID) error { return c.flush(ctx, id) }

// flush writes the pending counts of tenant only (uuid.Nil: of all).
func (c *Cost) flush(ctx context.Context, tenant uuid.UUID) error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	c.mu.Lock()
	var batch map[costKey]costCounts
	if tenant == uuid.Nil {
		batch, c.pending = c.pending, make(map[costKey]costCounts, len(c.pending))
	} else {
		batch = map[costKey]costCounts{}
		for k, v := range c.pending {
			if k.tenant == tenant {
				batch[k] = v
				delete(c.pending, k)
			}
		}
	}
	c.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}

	rows := make([]db.CostCount, 0, len(batch))
	for k, v := range batch {
		rows = append(rows, db.CostCount{TenantID: k.tenant, Day: k.day, Calls: v.calls, DBTime: v.dbTime, Rows: v.rows})
	}
	err := c.db.CostFlush(cost.Unmetered(ctx), rows)
	if err != nil {
		c.mu.Lock()
		for k, v := range batch {
			c.pending[k] = c.pending[k].plus(v)
		}
		c.mu.Unlock()
		return fmt.Errorf("flush costs of %d tenant-days: %w", len(batch), err)
	}
	return nil
}

// Run flushes every interval until ctx ends, then once more.
func (c *Cost) Run(ctx context.Context) error {
	flushEvery(ctx, c.interval, c.logger, "cost", c.Flush)
	return nil
}

// NewCostInterceptor measures every call bound to a tenant (refused ones
// too: they are the tenant's calls) with a cost.Meter and records it in c
// when the call ends. Put it right after the tenant is bound; the pool
// needs cost.Tracer. Calls without a tenant (sign-up) are not counted.
// An interceptor further in (metrics') shares the call's Meter.
func NewCostInterceptor(c *Cost) connect.Interceptor { return costInterceptor{c} }

type costInterceptor struct{ c *Cost }

func (i costInterceptor) record(ctx context.Context, m *cost.Meter) {
	if t, ok := tenancy.FromContext(ctx); ok {
		d, rows := m.Totals()
		i.c.Record(t.ID, d, rows)
	}
}

func (i costInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		m := cost.WithMeter(ctx)
		res, err := next(m, req)
		i.record(ctx, m)
		return res, err
	}
}

func (i costInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i costInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		m := cost.WithMeter(ctx)
		err := next(m, conn)
		i.record(ctx, m)
		return err
	}
}
