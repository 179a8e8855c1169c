package db_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db/dbtest"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
)

// sqlcQueryRE finds sqlc's generated statements: name, kind and text.
var sqlcQueryRE = regexp.MustCompile("(?s)const \\w+ = `-- name: (\\w+) :(\\w+)\n(.*?)`")

// tenantFilterRE matches an explicit tenant filter on a parameter.
var tenantFilterRE = regexp.MustCompile(`\btenant_id = \$\d+`)

// TestCitusRouterQueries: every sqlc read, update and delete that filters on tenant_id
// (enumerated from gen/dbsqlc, so a new query is covered without a list)
// plans, inside a tenant's transaction and so under the row-level
// security policy, as a Citus query of a single task: one shard on one
// worker (a router query), never a fan-out to every shard.
func TestCitusRouterQueries(t *testing.T) {
	dbtest.RequireCitus(t)
	t.Parallel()
	f := newFixture(t)

	files, err := filepath.Glob("../gen/dbsqlc/*.sql.go")
	require.NoError(t, err)
	type query struct{ name, sql string }
	var queries []query
	for _, file := range files {
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		for _, m := range sqlcQueryRE.FindAllStringSubmatch(string(b), -1) {
			// Reads, updates and deletes; an INSERT is routed by
			// the tenant_id it inserts (its plan with parameters
			// cannot be EXPLAINed on Citus).
			verb := strings.ToUpper(strings.Fields(m[3])[0])
			if tenantFilterRE.MatchString(m[3]) && (verb == "SELECT" || verb == "UPDATE" || verb == "DELETE") {
				queries = append(queries, query{m[1], m[3]})
			}
		}
	}
	require.Greater(t, len(queries), 40, "sqlc statements with a tenant_id filter")

	reads := 0
	for _, qu := range queries {
		t.Run(qu.name, func(t *testing.T) {
			err := f.db.ActAsTx(ctx, f.a, func(_ *dbsqlc.Queries, tx pgx.Tx) error {
				sd, err := tx.Prepare(ctx, "", "EXPLAIN "+qu.sql)
				if err != nil {
					return err
				}
				args := make([]any, len(sd.ParamOIDs))
				for i, oid := range sd.ParamOIDs {
					args[i] = explainArg(t, oid, f.a)
				}
				rows, err := tx.Query(ctx, "EXPLAIN "+qu.sql, args...)
				if err != nil {
					return err
				}
				lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					return err
				}
				plan := strings.Join(lines, "\n")
				require.Contains(t, plan, "Custom Scan (Citus Adaptive)", plan)
				require.Contains(t, plan, "Task Count: 1\n", "one shard:\n%s", plan)
				require.NotContains(t, plan, "Task Count: 4", plan)
				return nil
			})
			require.NoError(t, err)
		})
		if strings.HasPrefix(strings.TrimSpace(qu.sql), "SELECT") {
			reads++
		}
	}
	require.Greater(t, reads, 15, "reads among them")
}

// explainArg is a value of the parameter's type; every uuid is the
// tenant's id, so the tenant_id filters name one tenant.
func explainArg(t *testing.T, oid uint32, tenant uuid.UUID) any {
	switch oid {
	case pgtype.UUIDOID:
		return tenant
	case pgtype.UUIDArrayOID:
		return []uuid.UUID{tenant}
	case pgtype.TextOID, pgtype.VarcharOID:
		return "x"
	case pgtype.TextArrayOID:
		return []string{"x"}
	case pgtype.Int2OID:
		return int16(1)
	case pgtype.Int4OID:
		return int32(1)
	case pgtype.Int8OID:
		return int64(1)
	case pgtype.Int8ArrayOID:
		return []int64{1}
	case pgtype.Int4ArrayOID:
		return []int32{1}
	case pgtype.BoolOID:
		return false
	case pgtype.ByteaOID:
		return []byte{1}
	case pgtype.TimestamptzOID, pgtype.TimestampOID, pgtype.DateOID:
		return time.Now()
	case pgtype.TimestamptzArrayOID:
		return []time.Time{time.Now()}
	case pgtype.JSONBOID, pgtype.JSONOID:
		return "{}"
	case pgtype.Float8OID:
		return float64(1)
	case pgtype.IntervalOID:
		return time.Minute
	}
	t.Fatalf("no sample value for parameter type oid %d", oid)
	return nil
}
