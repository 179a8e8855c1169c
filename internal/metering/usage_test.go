package metering_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/db/dbtest"
	"github.com/quarters-dev/quarters/internal/metering"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

var procedures = []string{"/a.S/One", "/a.S/Two", "/a.S/Three"}

// newTenants creates n tenants as the owner and returns the app-role DB,
// an owner connection and the tenant ids.
func newTenants(t *testing.T, n int) (*db.DB, *pgx.Conn, []uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	appURL, ownerURL := dbtest.NewURLs(t)
	owner, err := pgx.Connect(ctx, ownerURL)
	require.NoError(t, err)
	t.Cleanup(func() { owner.Close(context.Background()) })
	rows, err := owner.Query(ctx, `insert into tenants (id, slug, name, owner_email)
		select gen_random_uuid(), 'u' || i, 'U', 'o@u' || i || '.example' from generate_series(1, $1) i
		returning id`, n)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	require.NoError(t, err)
	d, err := db.Open(ctx, appURL, &db.OpenOpts{MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(d.Close)
	return d, owner, ids
}

// TestShutdownFlushesEverything: counts for many tenants, recorded while
// the flush loop runs, are all in the database, exactly, once Run returns
// after its context ends (a clean shutdown).
func TestShutdownFlushesEverything(t *testing.T) {
	t.Parallel()
	const tenants = 5000
	d, owner, ids := newTenants(t, tenants)
	r := metering.NewUsage(d, slog.New(slog.NewTextHandler(io.Discard, nil)), 20*time.Millisecond)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()

	// Tenant i gets i%7+1 calls of each procedure and i%3 rate-limited
	// ones, from four goroutines at once.
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < tenants; i += 4 {
				for _, p := range procedures {
					for range i%7 + 1 {
						r.Record(ids[i], p, false)
					}
				}
				for range i % 3 {
					r.Record(ids[i], procedures[0], true)
				}
			}
		}()
	}
	wg.Wait()
	stop()
	<-done

	var wantReq, wantLimited int64
	for i := range tenants {
		wantReq += int64(len(procedures) * (i%7 + 1))
		wantLimited += int64(i % 3)
	}
	var gotReq, gotLimited, gotTenants int64
	require.NoError(t, owner.QueryRow(context.Background(),
		`select coalesce(sum(requests), 0)::bigint, coalesce(sum(rate_limited), 0)::bigint, count(distinct tenant_id) from usage_daily`).
		Scan(&gotReq, &gotLimited, &gotTenants))
	require.Equal(t, wantReq, gotReq, "requests")
	require.Equal(t, wantLimited, gotLimited, "rate-limited calls")
	require.Equal(t, int64(tenants), gotTenants)

	// Tenant 10's own rows, per procedure.
	var n int64
	require.NoError(t, owner.QueryRow(context.Background(),
		`select requests from usage_daily where tenant_id = $1 and procedure = $2`, ids[10], procedures[1]).Scan(&n))
	require.Equal(t, int64(10%7+1), n)
}

// TestMonthToDateFromMemory: the month-to-date total is read once, then
// follows local counts and the totals flushes return, including counts
// another replica flushed.
func TestMonthToDateFromMemory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, _, ids := newTenants(t, 2)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, b := metering.NewUsage(d, logger, 0), metering.NewUsage(d, logger, 0) // two replicas
	id, other := ids[0], ids[1]

	got, err := a.MonthToDate(ctx, id)
	require.NoError(t, err)
	require.Equal(t, int64(0), got)
	for range 5 {
		a.Record(id, procedures[0], false)
	}
	a.Record(id, procedures[0], true) // not counted against the quota
	a.Record(other, procedures[0], false)
	got, err = a.MonthToDate(ctx, id)
	require.NoError(t, err)
	require.Equal(t, int64(5), got)

	for range 3 {
		b.Record(id, procedures[1], false)
	}
	require.NoError(t, b.Flush(ctx))
	require.NoError(t, a.Flush(ctx))
	// a's flush returned the database's total: its 5 and b's 3.
	got, err = a.MonthToDate(ctx, id)
	require.NoError(t, err)
	require.Equal(t, int64(8), got)
	got, err = a.MonthToDate(ctx, other)
	require.NoError(t, err)
	require.Equal(t, int64(1), got, "the other tenant's count is its own")

	// A replica seeing the tenant first reads the database once.
	got, err = metering.NewUsage(d, logger, 0).MonthToDate(ctx, id)
	require.NoError(t, err)
	require.Equal(t, int64(8), got)
}
