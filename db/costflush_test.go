package db_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
)

// TestCostFlush: one call adds costs for several tenants (adding to rows
// already there), drops those of a tenant that does not exist instead of
// failing, and refuses to run acting for a tenant; each tenant reads only
// its own rows, and a tenant's transaction cannot write another's; the
// operator's list sums the range per tenant, most database time first.
func TestCostFlush(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	yesterday := today.AddDate(0, 0, -1)
	counts := []db.CostCount{
		{TenantID: f.a, Day: today, Calls: 3, DBTime: 1500 * time.Microsecond, Rows: 30},
		{TenantID: f.a, Day: yesterday, Calls: 1, DBTime: 100 * time.Microsecond, Rows: 1},
		{TenantID: f.b, Day: today, Calls: 2, DBTime: 9 * time.Millisecond, Rows: 4},
		{TenantID: uuid.New(), Day: today, Calls: 9, DBTime: time.Second, Rows: 9}, // no such tenant
	}
	require.NoError(t, f.db.CostFlush(ctx, counts))
	require.NoError(t, f.db.CostFlush(ctx, counts[:1]))

	want := map[uuid.UUID][]dbsqlc.CostByDayRow{
		f.a: {{Day: yesterday, Calls: 1, DbTimeUs: 100, Rows: 1}, {Day: today, Calls: 6, DbTimeUs: 3000, Rows: 60}},
		f.b: {{Day: today, Calls: 2, DbTimeUs: 9000, Rows: 4}},
	}
	for id, w := range want {
		got, err := db.InTenantV(as(id), f.db, func(q *dbsqlc.Queries) ([]dbsqlc.CostByDayRow, error) {
			return q.CostByDay(ctx, dbsqlc.CostByDayParams{TenantID: id, FirstDay: yesterday, LastDay: today})
		})
		require.NoError(t, err)
		require.Equal(t, w, got)
	}
	// Asking for the other tenant's id under one's own tenant reads nothing.
	got, err := db.InTenantV(as(f.a), f.db, func(q *dbsqlc.Queries) ([]dbsqlc.CostByDayRow, error) {
		return q.CostByDay(ctx, dbsqlc.CostByDayParams{TenantID: f.b, FirstDay: yesterday, LastDay: today})
	})
	require.NoError(t, err)
	require.Empty(t, got)

	err = f.db.InTenantDBTX(as(f.a), func(tx dbsqlc.DBTX) error {
		_, err := tx.Exec(ctx, `SELECT app.cost_flush(ARRAY[$1::uuid], ARRAY[current_date], ARRAY[1::bigint], ARRAY[1::bigint], ARRAY[1::bigint])`, f.b)
		return err
	})
	require.ErrorContains(t, err, "must not run acting for a tenant")
	err = f.db.InTenantDBTX(as(f.a), func(tx dbsqlc.DBTX) error {
		_, err := tx.Exec(ctx, `INSERT INTO tenant_costs_daily (tenant_id, day, calls) VALUES ($1, current_date - 5, 1)`, f.b)
		return err
	})
	require.ErrorContains(t, err, "row-level security")

	list, err := f.db.PlatformTenantCostList(ctx, db.PlatformTenantCostListParams{
		FirstDay: yesterday, LastDay: today, BeforeDBTimeMicros: 1 << 62, BeforeID: uuid.Max, Limit: 10,
	})
	require.NoError(t, err)
	require.Equal(t, []db.TenantCost{
		{TenantID: f.b, Calls: 2, DBTime: 9 * time.Millisecond, Rows: 4},
		{TenantID: f.a, Calls: 7, DBTime: 3100 * time.Microsecond, Rows: 61},
	}, list)
	// The next page starts after b.
	list, err = f.db.PlatformTenantCostList(ctx, db.PlatformTenantCostListParams{
		FirstDay: yesterday, LastDay: today, BeforeDBTimeMicros: 9000, BeforeID: f.b, Limit: 10,
	})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, f.a, list[0].TenantID)
}
