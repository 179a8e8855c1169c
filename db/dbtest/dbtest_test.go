package dbtest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestDatabasesAreIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	appA, ownerA := dbtest.NewURLs(t)
	appB, ownerB := dbtest.NewURLs(t)
	require.NotEqual(t, ownerA, ownerB)
	require.NotEqual(t, appA, appB)

	a, b := connect(t, ownerA), connect(t, ownerB)
	var nameA, nameB string
	require.NoError(t, a.QueryRow(ctx, "select current_database()").Scan(&nameA))
	require.NoError(t, b.QueryRow(ctx, "select current_database()").Scan(&nameB))
	require.NotEqual(t, nameA, nameB)

	// Both are copies of the migrated template.
	for _, c := range []*pgx.Conn{a, b} {
		var n int
		require.NoError(t, c.QueryRow(ctx, "select count(*) from public.schema_version").Scan(&n))
		require.Equal(t, 1, n)
	}

	_, err := a.Exec(ctx, "create table only_in_a (id int)")
	require.NoError(t, err)
	_, err = b.Exec(ctx, "select * from only_in_a")
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want a PostgreSQL error, got %v", err)
	require.Equal(t, "42P01", pgErr.Code) // undefined_table
}

func TestPoolIsAppRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	var user string
	var super, bypass bool
	require.NoError(t, pool.QueryRow(ctx,
		"select current_user, rolsuper, rolbypassrls from pg_roles where rolname = current_user").Scan(&user, &super, &bypass))
	require.Equal(t, "quarters_app", user)
	require.False(t, super)
	require.False(t, bypass)

	// The schema is there, and row-level security hides every tenant
	// when none is set.
	var n int
	require.NoError(t, pool.QueryRow(ctx, "select count(*) from tenants").Scan(&n))
	require.Zero(t, n)
}

// TestManyParallel checks that concurrent tests each get their own
// database without tripping over the shared template.
func TestManyParallel(t *testing.T) {
	for i := range 8 {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			_, owner := dbtest.NewURLs(t)
			conn := connect(t, owner)
			ctx := context.Background()
			_, err := conn.Exec(ctx, "create table t (i int)")
			require.NoError(t, err)
			_, err = conn.Exec(ctx, "insert into t values ($1)", i)
			require.NoError(t, err)
		})
	}
}

// BenchmarkNewURLs measures what a test pays for its own database. The
// drops run after the loop, as cleanups.
func BenchmarkNewURLs(b *testing.B) {
	for b.Loop() {
		dbtest.NewURLs(b)
	}
}
