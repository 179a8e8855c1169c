package db_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
)

// TestUsageFlush: one call adds counts for several tenants (adding to
// rows already there), returns each tenant's month total, drops counts of
// a tenant that does not exist instead of failing, and refuses to run
// inside a transaction acting for a tenant.
func TestUsageFlush(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	month := time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, time.UTC)
	lastMonth := month.AddDate(0, -1, 0)
	counts := []db.UsageCount{
		{TenantID: f.a, Day: today, Procedure: "/p.S/A", Requests: 3, RateLimited: 1},
		{TenantID: f.a, Day: today, Procedure: "/p.S/B", Requests: 4},
		{TenantID: f.a, Day: lastMonth, Procedure: "/p.S/A", Requests: 100},
		{TenantID: f.b, Day: today, Procedure: "/p.S/A", Requests: 2},
		{TenantID: uuid.New(), Day: today, Procedure: "/p.S/A", Requests: 9}, // no such tenant
	}
	totals, err := f.db.UsageFlush(ctx, counts, month)
	require.NoError(t, err)
	require.Equal(t, map[uuid.UUID]int64{f.a: 7, f.b: 2}, totals)
	totals, err = f.db.UsageFlush(ctx, counts[:1], month)
	require.NoError(t, err)
	require.Equal(t, map[uuid.UUID]int64{f.a: 10}, totals)

	// Each tenant reads its own counts under row-level security.
	for id, want := range map[uuid.UUID]int64{f.a: 10, f.b: 2} {
		got, err := db.InTenantV(as(id), f.db, func(q *dbsqlc.Queries) (int64, error) {
			return q.UsageMonthTotal(ctx, dbsqlc.UsageMonthTotalParams{TenantID: id, MonthStart: month})
		})
		require.NoError(t, err)
		require.Equal(t, want, got)
	}

	err = f.db.InTenantDBTX(as(f.a), func(tx dbsqlc.DBTX) error {
		_, err := tx.Exec(ctx, `SELECT * FROM app.usage_flush(ARRAY[$1::uuid], ARRAY[current_date], ARRAY['x'], ARRAY[1::bigint], ARRAY[0::bigint], current_date)`, f.b)
		return err
	})
	require.ErrorContains(t, err, "must not run acting for a tenant")
}
