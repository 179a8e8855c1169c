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
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/db/dbtest"
	"github.com/quarters-dev/quarters/internal/cost"
	"github.com/quarters-dev/quarters/internal/metering"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// storedCost is what tenant_costs_daily holds, read as the owner.
type storedCost struct {
	Calls, DBTimeUS, Rows, Days int64
}

func readCosts(t *testing.T, owner *pgx.Conn, tenant *uuid.UUID) storedCost {
	t.Helper()
	var c storedCost
	require.NoError(t, owner.QueryRow(context.Background(), `select coalesce(sum(calls), 0)::bigint, coalesce(sum(db_time_us), 0)::bigint,
		coalesce(sum(rows), 0)::bigint, count(*) from tenant_costs_daily where $1::uuid is null or tenant_id = $1`, tenant).
		Scan(&c.Calls, &c.DBTimeUS, &c.Rows, &c.Days))
	return c
}

// TestCostShutdownFlushesEverything: costs of many tenants, recorded from
// several goroutines while the flush loop runs, are all in the database,
// exactly, once Run returns after its context ends (a clean shutdown).
func TestCostShutdownFlushesEverything(t *testing.T) {
	t.Parallel()
	const tenants = 3000
	d, owner, ids := newTenants(t, tenants)
	c := metering.NewCost(d, quiet, &metering.CostOpts{Interval: 20 * time.Millisecond})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()

	// Tenant i makes i%5+1 calls of 7µs and i%3 rows each.
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < tenants; i += 4 {
				for range i%5 + 1 {
					c.Record(ids[i], 7*time.Microsecond, int64(i%3))
				}
			}
		})
	}
	wg.Wait()
	stop()
	<-done

	var want storedCost
	for i := range tenants {
		n := int64(i%5 + 1)
		want.Calls += n
		want.DBTimeUS += 7 * n
		want.Rows += n * int64(i%3)
	}
	want.Days = tenants
	require.Equal(t, want, readCosts(t, owner, nil))
	require.Equal(t, storedCost{Calls: 10%5 + 1, DBTimeUS: 7 * (10%5 + 1), Rows: (10%5 + 1) * (10 % 3), Days: 1}, readCosts(t, owner, &ids[10]))
}

// TestCostFlushDatabaseDown: a flush while PostgreSQL is down fails and
// keeps the counts; the next flush, once it is back, writes them (and
// those recorded meanwhile) exactly once, and a further flush adds nothing.
func TestCostFlushDatabaseDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := dbtest.NewPrivate(t)
	owner, err := pgx.Connect(ctx, pg.OwnerURL)
	require.NoError(t, err)
	var id uuid.UUID
	require.NoError(t, owner.QueryRow(ctx, `insert into tenants (id, slug, name, owner_email) values (gen_random_uuid(), 'down', 'Down', 'o@down.example') returning id`).Scan(&id))
	require.NoError(t, owner.Close(ctx))
	d, err := db.Open(ctx, pg.AppURL, &db.OpenOpts{MaxConns: 2})
	require.NoError(t, err)
	t.Cleanup(d.Close)
	c := metering.NewCost(d, quiet, nil)

	c.Record(id, 3*time.Millisecond, 10)
	c.Record(id, 2*time.Millisecond, 5)
	pg.Stop()
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	require.Error(t, c.Flush(fctx))
	cancel()
	c.Record(id, time.Millisecond, 1)
	pg.Start()
	require.NoError(t, c.Flush(ctx))
	require.NoError(t, c.Flush(ctx))

	owner, err = pgx.Connect(ctx, pg.OwnerURL)
	require.NoError(t, err)
	defer owner.Close(ctx)
	require.Equal(t, storedCost{Calls: 3, DBTimeUS: 6000, Rows: 16, Days: 1}, readCosts(t, owner, &id))
}

// TestCostFlushStatementFails: a flush whose statement fails (here: the
// app role may no longer run it) keeps the counts, and the next flush
// writes them once.
func TestCostFlushStatementFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, owner, ids := newTenants(t, 2)
	c := metering.NewCost(d, quiet, nil)
	c.Record(ids[0], 4*time.Millisecond, 2)
	c.Record(ids[1], 5*time.Millisecond, 3)

	const sig = `app.cost_flush(uuid[], date[], bigint[], bigint[], bigint[])`
	_, err := owner.Exec(ctx, `revoke execute on function `+sig+` from quarters_app`)
	require.NoError(t, err)
	require.ErrorContains(t, c.Flush(ctx), "permission denied")
	require.Equal(t, storedCost{}, readCosts(t, owner, nil))

	c.Record(ids[0], time.Millisecond, 1)
	_, err = owner.Exec(ctx, `grant execute on function `+sig+` to quarters_app`)
	require.NoError(t, err)
	require.NoError(t, c.Flush(ctx))
	require.NoError(t, c.Flush(ctx))
	require.Equal(t, storedCost{Calls: 2, DBTimeUS: 5000, Rows: 3, Days: 1}, readCosts(t, owner, &ids[0]))
	require.Equal(t, storedCost{Calls: 1, DBTimeUS: 5000, Rows: 3, Days: 1}, readCosts(t, owner, &ids[1]))
}

// TestCostDayBoundary: a call is counted on the UTC day it finished,
// whatever the server's time zone; FlushTenant writes one tenant's counts
// only.
func TestCostDayBoundary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, owner, ids := newTenants(t, 2)
	// 23:59:59.999 UTC on 2026-03-31 is 01:59 on April 1st in Berlin.
	berlin := time.FixedZone("CEST", 2*3600)
	now := time.Date(2026, 4, 1, 1, 59, 59, 999e6, berlin)
	c := metering.NewCost(d, quiet, &metering.CostOpts{NowFunc: func() time.Time { return now }})
	c.Record(ids[0], time.Millisecond, 1)
	c.Record(ids[1], time.Millisecond, 1)
	now = now.Add(time.Millisecond) // midnight UTC
	c.Record(ids[0], 2*time.Millisecond, 2)

	require.NoError(t, c.FlushTenant(ctx, ids[0]))
	require.Equal(t, storedCost{}, readCosts(t, owner, &ids[1]), "another tenant's counts wait for the full flush")
	rows, err := owner.Query(ctx, `select to_char(day, 'YYYY-MM-DD'), calls, db_time_us, rows from tenant_costs_daily where tenant_id = $1 order by day`, ids[0])
	require.NoError(t, err)
	type dayRow struct {
		Day                  string
		Calls, DBTimeUS, Row int64
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[dayRow])
	require.NoError(t, err)
	require.Equal(t, []dayRow{{"2026-03-31", 1, 1000, 1}, {"2026-04-01", 1, 2000, 2}}, got)
	require.NoError(t, c.Flush(ctx))
	require.Equal(t, storedCost{Calls: 1, DBTimeUS: 1000, Rows: 1, Days: 1}, readCosts(t, owner, &ids[1]))
}

// TestCostFlushIsNoTenantsCost: a flush run within a metered call (GetCost
// flushes before it reads) adds nothing to the call's meter.
func TestCostFlushIsNoTenantsCost(t *testing.T) {
	t.Parallel()
	appURL, ownerURL := dbtest.NewURLs(t)
	ctx := context.Background()
	owner, err := pgx.Connect(ctx, ownerURL)
	require.NoError(t, err)
	defer owner.Close(ctx)
	var id uuid.UUID
	require.NoError(t, owner.QueryRow(ctx, `insert into tenants (id, slug, name, owner_email) values (gen_random_uuid(), 'm', 'M', 'o@m.example') returning id`).Scan(&id))
	d, err := db.Open(ctx, appURL, &db.OpenOpts{MaxConns: 2, ConfigFunc: func(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = cost.Tracer{} }})
	require.NoError(t, err)
	defer d.Close()

	c := metering.NewCost(d, quiet, nil)
	c.Record(id, time.Millisecond, 1)
	meter := cost.WithMeter(ctx)
	require.NoError(t, c.FlushTenant(meter, id))
	took, rows := meter.Totals()
	require.Zero(t, took)
	require.Zero(t, rows)
	require.Equal(t, int64(1), readCosts(t, owner, &id).Calls, "the flush did write")

	// The same statement under the meter would have been counted.
	_, err = d.Pool().Exec(meter, `select 1`)
	require.NoError(t, err)
	_, rows = meter.Totals()
	require.Equal(t, int64(1), rows)
}
