package db_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/db/dbtest"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
)

// TestCitusSchema: every table with tenant_id is distributed by it in one
// colocation group, tenants and the tables they reference are reference
// tables, and every shard on the workers has row-level security enabled,
// forced and its policy.
func TestCitusSchema(t *testing.T) {
	dbtest.RequireCitus(t)
	t.Parallel()
	_, ownerURL := dbtest.NewURLs(t)
	conn, err := pgx.Connect(ctx, ownerURL)
	require.NoError(t, err)
	defer conn.Close(ctx)

	type table struct {
		Name, Kind, Column string
		Colocation         int
	}
	rows, err := conn.Query(ctx, `
SELECT c.relname, coalesce(p.partmethod::text, ''),
  coalesce(column_to_column_name(p.logicalrelid, p.partkey), ''), coalesce(p.colocationid, 0),
  EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_dist_partition p ON p.logicalrelid = c.oid
WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname NOT LIKE 'river%' ORDER BY 1`)
	require.NoError(t, err)
	colocations := map[int]bool{}
	distributed := 0
	for rows.Next() {
		var tb table
		var hasTenant bool
		require.NoError(t, rows.Scan(&tb.Name, &tb.Kind, &tb.Column, &tb.Colocation, &hasTenant))
		switch {
		case tb.Name == "tenants" || tb.Name == "plans" || tb.Name == "users":
			require.Equal(t, "n", tb.Kind, "%s: reference table", tb.Name)
		case hasTenant:
			require.Equal(t, "h", tb.Kind, "%s: distributed", tb.Name)
			require.Equal(t, "tenant_id", tb.Column, tb.Name)
			colocations[tb.Colocation] = true
			distributed++
		}
	}
	require.NoError(t, rows.Err())
	require.Greater(t, distributed, 10)
	require.Len(t, colocations, 1, "one colocation group")

	// On the workers: every shard of a distributed table has RLS on,
	// forced, and the policy without a subquery.
	var bad []string
	require.NoError(t, conn.QueryRow(ctx, `
SELECT coalesce(array_agg(result ORDER BY result) FILTER (WHERE result <> 'ok'), '{}')
FROM run_command_on_shards('documents', $$
  SELECT CASE WHEN c.relrowsecurity AND c.relforcerowsecurity
    AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'tenant_isolation')
  THEN 'ok' ELSE c.relname END FROM pg_class c WHERE c.oid = '%s'::regclass $$)`).Scan(&bad))
	require.Empty(t, bad)

	// Idempotent: a second run changes nothing and succeeds.
	require.NoError(t, db.MigrateCitus(ctx, ownerURL, nil))
}

// TestCitusTenantReachesWorkers: a query InTenant routes to a worker sees
// its tenant's rows only, and the same query with no tenant sees nothing:
// the tenant setting reaches the worker, and RLS is enforced there.
func TestCitusTenantReachesWorkers(t *testing.T) {
	dbtest.RequireCitus(t)
	t.Parallel()
	f := newFixture(t)
	require.True(t, f.db.Citus())

	for _, id := range []uuid.UUID{f.a, f.b} {
		// Without the tenant_id filter, so only RLS on the worker decides.
		var n, other int
		require.NoError(t, f.db.ActAsTx(ctx, id, func(_ *dbsqlc.Queries, tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n); err != nil {
				return err
			}
			return tx.QueryRow(ctx, "SELECT count(*) FROM projects WHERE tenant_id <> $1", id).Scan(&other)
		}))
		require.Equal(t, 1, n, "own project, through a multi-shard query")
		require.Zero(t, other)

		// A router query (the sqlc list, filtered by tenant_id) as the
		// other tenant finds nothing of this one's.
		otherID := f.b
		if id == f.b {
			otherID = f.a
		}
		rows, err := db.InTenantV(as(otherID), f.db, func(q *dbsqlc.Queries) ([]dbsqlc.Project, error) {
			return q.ProjectList(ctx, dbsqlc.ProjectListParams{TenantID: id, BeforeTime: maxTime, BeforeID: uuid.Max, PageLimit: 10})
		})
		require.NoError(t, err)
		require.Empty(t, rows)
	}

	// No tenant set: the workers' shards return nothing.
	var n int
	require.NoError(t, f.db.Pool().QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n))
	require.Zero(t, n)
	require.NoError(t, f.db.Pool().QueryRow(ctx, "SELECT count(*) FROM projects WHERE tenant_id = $1", f.a).Scan(&n))
	require.Zero(t, n, "router query without a tenant")
}
