package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/db/dbtest"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

var (
	ctx     = context.Background()
	maxTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
)

// fixture is a database with two tenants, each with one project, opened as
// the app role.
type fixture struct {
	db       *db.DB
	appURL   string
	ownerURL string
	a, b     uuid.UUID
	aProject uuid.UUID
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	appURL, ownerURL := dbtest.NewURLs(t)
	d, err := db.Open(ctx, appURL, &db.OpenOpts{MaxConns: 2})
	require.NoError(t, err)
	t.Cleanup(d.Close)
	f := &fixture{db: d, appURL: appURL, ownerURL: ownerURL, a: uuid.New(), b: uuid.New()}
	for i, id := range []uuid.UUID{f.a, f.b} {
		err := d.ActAs(ctx, id, func(q *dbsqlc.Queries) error {
			_, err := q.TenantInsert(ctx, dbsqlc.TenantInsertParams{ID: id, Slug: []string{"ta", "tb"}[i], Name: "t", OwnerEmail: "o@x.example"})
			if err != nil {
				return err
			}
			p, err := q.ProjectInsert(ctx, dbsqlc.ProjectInsertParams{TenantID: id, Name: "p"})
			if id == f.a {
				f.aProject = p.ID
			}
			return err
		})
		require.NoError(t, err)
	}
	return f
}

func as(id uuid.UUID) context.Context { return tenancy.NewContext(ctx, tenancy.Tenant{ID: id}) }

// TestAppRoleWithoutTenantSeesNothing: outside InTenant, with no tenant set
// or with the ” a reused pooled connection reads, the app role sees zero
// rows, without an error.
func TestAppRoleWithoutTenantSeesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	conn, err := f.db.Pool().Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	count := func() (n int) {
		require.NoError(t, conn.QueryRow(ctx,
			"select (select count(*) from tenants) + (select count(*) from projects) + (select count(*) from api_keys) + (select count(*) from documents)").Scan(&n))
		return n
	}
	require.Equal(t, 0, count(), "no tenant set")

	// After a transaction-local setting ends, the connection reads ''.
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "select set_config('app.tenant_id', $1, true)", f.a.String())
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	var setting string
	require.NoError(t, conn.QueryRow(ctx, "select current_setting('app.tenant_id', true)").Scan(&setting))
	require.Equal(t, "", setting)
	require.Equal(t, 0, count(), "tenant setting ''")
}

// TestAppRoleCannotWriteForAnotherTenant: WITH CHECK refuses rows for any
// tenant but the transaction's, and updates cannot move a row across.
func TestAppRoleCannotWriteForAnotherTenant(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	err := f.db.InTenant(as(f.a), func(q *dbsqlc.Queries) error {
		_, err := q.ProjectInsert(ctx, dbsqlc.ProjectInsertParams{TenantID: f.b, Name: "planted"})
		return err
	})
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "got %v", err)
	require.Equal(t, "42501", pgErr.Code) // insufficient_privilege: RLS WITH CHECK

	err = f.db.InTenant(as(f.b), func(q *dbsqlc.Queries) error {
		tag, err := q.ProjectDelete(ctx, dbsqlc.ProjectDeleteParams{TenantID: f.a, ID: f.aProject})
		require.Zero(t, tag)
		return err
	})
	require.NoError(t, err)

	rows, err := db.InTenantV(as(f.a), f.db, func(q *dbsqlc.Queries) ([]dbsqlc.Project, error) {
		return q.ProjectList(ctx, dbsqlc.ProjectListParams{TenantID: f.a, BeforeTime: maxTime, BeforeID: uuid.Max, PageLimit: 10})
	})
	require.NoError(t, err)
	require.Len(t, rows, 1, "A's project survived B's delete")
}

// TestRLSWithoutFilter: even a query that forgets the tenant_id filter only
// returns the transaction's tenant's rows.
func TestRLSWithoutFilter(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, id := range []uuid.UUID{f.a, f.b} {
		var got []uuid.UUID
		err := f.db.InTenantDBTX(as(id), func(tx dbsqlc.DBTX) error {
			rows, err := tx.Query(ctx, "select tenant_id from projects")
			if err != nil {
				return err
			}
			got, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
			return err
		})
		require.NoError(t, err)
		require.Equal(t, []uuid.UUID{id}, got)
	}
}

func TestInTenantRequiresTenant(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	called := false
	err := f.db.InTenant(ctx, func(q *dbsqlc.Queries) error { called = true; return nil })
	require.ErrorIs(t, err, tenancy.ErrNoTenant)
	require.False(t, called)
}

// TestInTenantRollsBack: an error from fn undoes everything fn wrote, and
// the connection goes back to the pool clean.
func TestInTenantRollsBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	boom := errors.New("boom")
	err := f.db.InTenant(as(f.a), func(q *dbsqlc.Queries) error {
		_, err := q.ProjectInsert(ctx, dbsqlc.ProjectInsertParams{TenantID: f.a, Name: "half-written"})
		require.NoError(t, err)
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.Panics(t, func() {
		_ = f.db.InTenant(as(f.a), func(q *dbsqlc.Queries) error {
			_, err := q.ProjectInsert(ctx, dbsqlc.ProjectInsertParams{TenantID: f.a, Name: "panicked"})
			require.NoError(t, err)
			panic("handler bug")
		})
	})
	rows, err := db.InTenantV(as(f.a), f.db, func(q *dbsqlc.Queries) ([]dbsqlc.Project, error) {
		return q.ProjectList(ctx, dbsqlc.ProjectListParams{TenantID: f.a, BeforeTime: maxTime, BeforeID: uuid.Max, PageLimit: 10})
	})
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.Equal(t, "p", rows[0].Name)
	// Every pooled connection is idle, outside any transaction.
	for _, c := range f.db.Pool().AcquireAllIdle(ctx) {
		require.Equal(t, byte('I'), c.Conn().PgConn().TxStatus())
		c.Release()
	}
}

// TestInTenantSnapshotTx: a change committed while InTenantSnapshotTx's
// function runs is not seen by its later statements (the export's
// transaction is one instant), where InTenantTx's READ COMMITTED sees it;
// the snapshot still holds only the tenant's own rows.
func TestInTenantSnapshotTx(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	list := func(q *dbsqlc.Queries) []dbsqlc.Project {
		rows, err := q.ProjectList(ctx, dbsqlc.ProjectListParams{TenantID: f.a, BeforeTime: maxTime, BeforeID: uuid.Max, PageLimit: 10})
		require.NoError(t, err)
		return rows
	}
	for _, tc := range []struct {
		name  string
		run   func(context.Context, func(*dbsqlc.Queries, pgx.Tx) error) error
		after int
	}{
		{"snapshot", f.db.InTenantSnapshotTx, 1},
		{"read committed", f.db.InTenantTx, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after []dbsqlc.Project
			err := tc.run(as(f.a), func(q *dbsqlc.Queries, tx pgx.Tx) error {
				before = list(q)
				// Committed by another connection meanwhile.
				require.NoError(t, f.db.InTenant(as(f.a), func(q *dbsqlc.Queries) error {
					_, err := q.ProjectInsert(ctx, dbsqlc.ProjectInsertParams{TenantID: f.a, Name: "meanwhile " + tc.name})
					return err
				}))
				after = list(q)
				return nil
			})
			require.NoError(t, err)
			require.Len(t, after, tc.after)
			for _, p := range append(before, after...) {
				require.Equal(t, f.a, p.TenantID)
			}
			// The transaction before it left a project too: drop it so the
			// next case starts from one.
			require.NoError(t, f.db.InTenant(as(f.a), func(q *dbsqlc.Queries) error {
				for _, p := range list(q) {
					if p.ID != f.aProject {
						if _, err := q.ProjectDelete(ctx, dbsqlc.ProjectDeleteParams{TenantID: f.a, ID: p.ID}); err != nil {
							return err
						}
					}
				}
				return nil
			}))
		})
	}
}

func TestOpenRefusesUnsafeRole(t *testing.T) {
	t.Parallel()
	_, ownerURL := dbtest.NewURLs(t)
	_, err := db.Open(ctx, ownerURL, nil)
	require.ErrorIs(t, err, db.ErrUnsafeRole)
}

func TestLookupAPIKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	secret, hash, prefix := auth.NewAPIKey()
	err := f.db.InTenant(as(f.a), func(q *dbsqlc.Queries) error {
		_, err := q.ApiKeyInsert(ctx, dbsqlc.ApiKeyInsertParams{TenantID: f.a, Name: "k", Role: "member", SecretHash: hash[:], Prefix: prefix})
		return err
	})
	require.NoError(t, err)
	rec, err := f.db.LookupAPIKey(ctx, hash)
	require.NoError(t, err)
	require.Equal(t, f.a, rec.TenantID)
	require.Equal(t, "ta", rec.TenantSlug)
	require.True(t, rec.TenantActive)
	require.Equal(t, "member", rec.Role.String())
	require.Equal(t, hash[:], rec.SecretHash)
	require.NotEmpty(t, secret)

	_, err = f.db.LookupAPIKey(ctx, [32]byte{1})
	require.ErrorIs(t, err, db.ErrNotFound)

	// The app role cannot read api_keys directly across tenants.
	var n int
	require.NoError(t, f.db.Pool().QueryRow(ctx, "select count(*) from api_keys").Scan(&n))
	require.Zero(t, n)
}

// TestStatementTimeout: the plan's statement_timeout applies inside
// InTenant, transaction-locally.
func TestStatementTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := tenancy.NewContext(ctx, tenancy.Tenant{ID: f.a, Limits: tenancy.Limits{StatementTimeout: 50 * time.Millisecond}})
	err := f.db.InTenantDBTX(ctx, func(tx dbsqlc.DBTX) error {
		_, err := tx.Exec(ctx, "select pg_sleep(2)")
		return err
	})
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "got %v", err)
	require.Equal(t, "57014", pgErr.Code) // query_canceled by statement_timeout

	var setting string
	require.NoError(t, f.db.Pool().QueryRow(ctx, "show statement_timeout").Scan(&setting))
	require.Equal(t, "0", setting, "the timeout leaked out of the transaction")
}
