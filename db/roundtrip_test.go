package db_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/db/dbtest"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
)

// roundTrips counts client→server→client exchanges on the wire: a write
// that follows a read (or starts the connection) begins a new round trip.
type roundTrips struct{ n atomic.Int64 }

type countingConn struct {
	net.Conn
	rt      *roundTrips
	writing bool
}

func (c *countingConn) Write(p []byte) (int, error) {
	if !c.writing {
		c.rt.n.Add(1)
		c.writing = true
	}
	return c.Conn.Write(p)
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.writing = false
	return c.Conn.Read(p)
}

// countedPool opens a one-connection pool on url whose round trips rt counts.
func countedPool(tb testing.TB, url string, rt *roundTrips) *pgxpool.Pool {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(tb, err)
	cfg.MaxConns, cfg.MinConns = 1, 1
	dial := cfg.ConnConfig.DialFunc
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, rt: rt}, nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(tb, err)
	tb.Cleanup(pool.Close)
	return pool
}

type readBench struct {
	tenantDB, bareDB *db.DB
	tenantRT, bareRT roundTrips
	tenantID, id     uuid.UUID
}

// newReadBench seeds one project and returns the same single-row read two
// ways: through InTenant as the app role, and bare on the owner's
// connection (row-level security does not apply there, so no tenant needs
// setting). Both run once first so pgx has prepared the statements.
func newReadBench(tb testing.TB) *readBench {
	appURL, ownerURL := dbtest.NewURLs(tb)
	r := &readBench{tenantID: uuid.New()}
	r.tenantDB = db.NewForTest(countedPool(tb, appURL, &r.tenantRT))
	r.bareDB = db.NewForTest(countedPool(tb, ownerURL, &r.bareRT))
	require.NoError(tb, r.tenantDB.ActAs(ctx, r.tenantID, func(q *dbsqlc.Queries) error {
		if _, err := q.TenantInsert(ctx, dbsqlc.TenantInsertParams{ID: r.tenantID, Slug: "bench", Name: "b", OwnerEmail: "b@x.example"}); err != nil {
			return err
		}
		p, err := q.ProjectInsert(ctx, dbsqlc.ProjectInsertParams{TenantID: r.tenantID, Name: "p"})
		r.id = p.ID
		return err
	}))
	require.NoError(tb, r.inTenant())
	require.NoError(tb, r.bare())
	return r
}

func (r *readBench) params() dbsqlc.ProjectGetParams {
	return dbsqlc.ProjectGetParams{TenantID: r.tenantID, ID: r.id}
}

func (r *readBench) inTenant() error {
	return r.tenantDB.InTenant(as(r.tenantID), func(q *dbsqlc.Queries) error {
		_, err := q.ProjectGet(ctx, r.params())
		return err
	})
}

func (r *readBench) bare() error {
	_, err := dbsqlc.New(r.bareDB.Pool()).ProjectGet(ctx, r.params())
	return err
}

// TestInTenantRoundTrips: the tenant-scoped read costs at most one round
// trip more than the bare read (counted on the wire, so not timing-bound).
func TestInTenantRoundTrips(t *testing.T) {
	t.Parallel()
	r := newReadBench(t)
	r.tenantRT.n.Store(0)
	r.bareRT.n.Store(0)
	require.NoError(t, r.inTenant())
	require.NoError(t, r.bare())
	bare, wrapped := r.bareRT.n.Load(), r.tenantRT.n.Load()
	require.Equal(t, int64(1), bare, "bare single-row read")
	require.Equal(t, int64(2), wrapped, "InTenant read: batch(begin, set_config, query) + commit")
}

// BenchmarkTenantRead compares one single-row read with and without
// InTenant and reports round trips per read.
func BenchmarkTenantRead(b *testing.B) {
	r := newReadBench(b)
	for _, c := range []struct {
		name string
		rt   *roundTrips
		fn   func() error
	}{{"bare", &r.bareRT, r.bare}, {"InTenant", &r.tenantRT, r.inTenant}} {
		b.Run(c.name, func(b *testing.B) {
			c.rt.n.Store(0)
			b.ReportAllocs()
			for b.Loop() {
				if err := c.fn(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(c.rt.n.Load())/float64(b.N), "roundtrips/op")
		})
	}
}
