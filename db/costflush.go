package db

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// CostCount is one (tenant, day) row's cost to add.
type CostCount struct {
	TenantID uuid.UUID
	Day      time.Time // UTC midnight
	Calls    int64
	DBTime   time.Duration
	Rows     int64
}

// CostFlush adds counts to tenant_costs_daily for any number of tenants,
// one statement (app.cost_flush, 012_tenant_costs.sql) per usageFlushChunk
// rows, all in one transaction: it either adds everything or nothing, so a
// caller that keeps what failed never counts twice. Keys must be unique.
// Counts of tenants that no longer exist are dropped. It runs as a
// privileged function, not acting for a tenant; ctx should carry no
// cost.Meter (the flush is no tenant's cost).
func (d *DB) CostFlush(ctx context.Context, counts []CostCount) error {
	if len(counts) == 0 {
		return nil
	}
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("flush costs: begin: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
		_ = tx.Rollback(rctx) // a no-op after Commit
		cancel()
	}()
	n := min(len(counts), usageFlushChunk)
	ids, days := make([]uuid.UUID, 0, n), make([]time.Time, 0, n)
	calls, us, rows := make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n)
	for start := 0; start < len(counts); start += usageFlushChunk {
		ids, days, calls, us, rows = ids[:0], days[:0], calls[:0], us[:0], rows[:0]
		for _, c := range counts[start:min(start+usageFlushChunk, len(counts))] {
			ids, days = append(ids, c.TenantID), append(days, c.Day)
			calls, us, rows = append(calls, c.Calls), append(us, c.DBTime.Microseconds()), append(rows, c.Rows)
		}
		if _, err := tx.Exec(ctx, `SELECT app.cost_flush($1, $2::date[], $3, $4, $5)`, ids, days, calls, us, rows); err != nil {
			return fmt.Errorf("flush costs: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("flush costs: commit: %w", err)
	}
	return nil
}

// TenantCost is one tenant's cost over a range of days.
type TenantCost struct {
	TenantID uuid.UUID
	Calls    int64
	DBTime   time.Duration
	Rows     int64
}

// PlatformTenantCostListParams are PlatformTenantCostList's inputs.
type PlatformTenantCostListParams struct {
	// FirstDay and LastDay bound the range, inclusive (UTC dates).
	FirstDay, LastDay time.Time
	// BeforeDBTimeMicros and BeforeID are the keyset cursor: only tenants
	// whose (database time in microseconds, id) is strictly below it are
	// listed. (Microseconds, not a Duration: the first page's cursor is
	// beyond any Duration.)
	BeforeDBTimeMicros int64
	BeforeID           uuid.UUID
	// Limit caps the rows returned (at most 1001).
	Limit int32
}

// PlatformTenantCostList lists every tenant's totals over a range of
// days, costliest (database time) first, in one statement. Tenants
// without stored cost in the range are not listed. (One tenant's days
// are read with ActAs and dbsqlc's CostByDay.)
func (d *DB) PlatformTenantCostList(ctx context.Context, p PlatformTenantCostListParams) ([]TenantCost, error) {
	rows, err := d.pool.Query(ctx, `SELECT tenant_id, calls, db_time_us, rows
FROM app.platform_tenant_cost_list($1::date, $2::date, $3, $4, $5)`,
		p.FirstDay, p.LastDay, p.BeforeDBTimeMicros, p.BeforeID, p.Limit)
	if err != nil {
		return nil, fmt.Errorf("list tenant costs: %w", err)
	}
	defer rows.Close()
	var out []TenantCost
	for rows.Next() {
		var c TenantCost
		var us int64
		if err := rows.Scan(&c.TenantID, &c.Calls, &us, &c.Rows); err != nil {
			return nil, fmt.Errorf("list tenant costs: %w", err)
		}
		c.DBTime = time.Duration(us) * time.Microsecond
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tenant costs: %w", err)
	}
	return out, nil
}
