package db

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// UsageCount is one (tenant, day, procedure) row's counts to add.
type UsageCount struct {
	TenantID    uuid.UUID
	Day         time.Time // UTC midnight
	Procedure   string
	Requests    int64
	RateLimited int64
}

// usageFlushChunk bounds one statement's rows: large enough that 100,000
// active tenants take a handful of statements, small enough that each
// stays well inside the statement timeout and its arrays stay small.
const usageFlushChunk = 10000

// UsageFlush adds counts to usage_daily for any number of tenants, one
// statement (app.usage_flush, 008_batched_flush.sql) per usageFlushChunk
// rows, all in one transaction: it either adds everything or nothing, so a
// caller that keeps what failed never counts twice. Keys must be unique.
// It returns, for every tenant in counts that still exists, its requests
// from monthStart on as the database now holds them (every replica's).
// It runs as a privileged function, not acting for a tenant.
func (d *DB) UsageFlush(ctx context.Context, counts []UsageCount, monthStart time.Time) (map[uuid.UUID]int64, error) {
	totals := make(map[uuid.UUID]int64)
	if len(counts) == 0 {
		return totals, nil
	}
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("flush usage: begin: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
		_ = tx.Rollback(rctx) // a no-op after Commit
		cancel()
	}()
	n := min(len(counts), usageFlushChunk)
	ids, days, procs := make([]uuid.UUID, 0, n), make([]time.Time, 0, n), make([]string, 0, n)
	reqs, limited := make([]int64, 0, n), make([]int64, 0, n)
	for start := 0; start < len(counts); start += usageFlushChunk {
		ids, days, procs, reqs, limited = ids[:0], days[:0], procs[:0], reqs[:0], limited[:0]
		for _, c := range counts[start:min(start+usageFlushChunk, len(counts))] {
			ids, days, procs = append(ids, c.TenantID), append(days, c.Day), append(procs, c.Procedure)
			reqs, limited = append(reqs, c.Requests), append(limited, c.RateLimited)
		}
		rows, err := tx.Query(ctx, `SELECT tenant_id, month_requests FROM app.usage_flush($1, $2::date[], $3, $4, $5, $6::date)`,
			ids, days, procs, reqs, limited, monthStart)
		if err != nil {
			return nil, fmt.Errorf("flush usage: %w", err)
		}
		for rows.Next() {
			var id uuid.UUID
			var total int64
			if err := rows.Scan(&id, &total); err != nil {
				rows.Close()
				return nil, fmt.Errorf("flush usage: %w", err)
			}
			totals[id] = total
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("flush usage: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("flush usage: commit: %w", err)
	}
	return totals, nil
}
