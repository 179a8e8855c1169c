package jobs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/db/dbtest"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	"github.com/quarters-dev/quarters/internal/jobs"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

type pingArgs struct{ N int }

func (pingArgs) Kind() string { return "ping" }

type pingWorker struct {
	river.WorkerDefaults[pingArgs]
	done chan int
}

func (w *pingWorker) Work(_ context.Context, j *river.Job[pingArgs]) error {
	w.done <- j.Args.N
	return nil
}

// TestInsertTx: a job enqueued in a tenant's transaction exists only if
// the transaction commits, and is then worked, as the app role (which
// passes db.CheckAppRole: River runs on grants, owning nothing).
func TestInsertTx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	appURL, ownerURL := dbtest.NewURLs(t)
	d, err := db.Open(ctx, appURL, nil)
	require.NoError(t, err)
	t.Cleanup(d.Close)
	w := &pingWorker{done: make(chan int, 4)}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	c, err := jobs.New(jobs.Params{Pool: d.Pool(), Workers: workers})
	require.NoError(t, err)

	tenantID := uuid.New()
	boom := errors.New("rolled back")
	err = d.ActAsTx(ctx, tenantID, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		if _, err := q.TenantInsert(ctx, dbsqlc.TenantInsertParams{ID: tenantID, Slug: "jobs", Name: "J", OwnerEmail: "o@x.example"}); err != nil {
			return err
		}
		if err := c.InsertTx(ctx, tx, pingArgs{N: 1}); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.NoError(t, d.ActAsTx(ctx, tenantID, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		if _, err := q.TenantInsert(ctx, dbsqlc.TenantInsertParams{ID: tenantID, Slug: "jobs", Name: "J", OwnerEmail: "o@x.example"}); err != nil {
			return err
		}
		return c.InsertTx(ctx, tx, pingArgs{N: 2})
	}))
	owner, err := pgx.Connect(ctx, ownerURL)
	require.NoError(t, err)
	defer owner.Close(ctx)
	var n int
	require.NoError(t, owner.QueryRow(ctx, "select count(*) from river_job where kind = 'ping'").Scan(&n))
	require.Equal(t, 1, n, "the rolled-back job was not kept")

	require.NoError(t, c.Start(ctx))
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	select {
	case got := <-w.done:
		require.Equal(t, 2, got)
	case <-time.After(30 * time.Second):
		t.Fatal("the committed job was never worked")
	}
}
