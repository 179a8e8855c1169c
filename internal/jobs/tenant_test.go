package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/db/dbtest"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	"github.com/quarters-dev/quarters/internal/jobs"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// countArgs counts the projects its tenant can see.
type countArgs struct {
	TenantID uuid.UUID `json:"tenant_id"`
}

func (countArgs) Kind() string                 { return "count_projects" }
func (a countArgs) JobTenant() uuid.UUID       { return a.TenantID }
func (countArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 3} }

// seen is one attempt of a count job: the tenant bound to its context and
// the projects it counted.
type seen struct {
	attempt int
	tenant  uuid.UUID
	count   int
}

// retryNow retries a failed job at once, so a test waits for River's
// scheduler only.
type retryNow struct{}

func (retryNow) NextRetry(*rivertype.JobRow) time.Time { return time.Now() }

type fixture struct {
	d     *db.DB
	owner *pgx.Conn
	c     *jobs.Client
	seen  chan seen
}

// newFixture returns a client working count jobs with failFirst making
// the first attempt of each fail.
func newFixture(t *testing.T, failFirst bool) *fixture {
	t.Helper()
	ctx := context.Background()
	appURL, ownerURL := dbtest.NewURLs(t)
	d, err := db.Open(ctx, appURL, nil)
	require.NoError(t, err)
	t.Cleanup(d.Close)
	owner, err := pgx.Connect(ctx, ownerURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = owner.Close(context.Background()) })
	f := &fixture{d: d, owner: owner, seen: make(chan seen, 16)}
	workers := river.NewWorkers()
	river.AddWorker(workers, jobs.NewTenantWorker(jobs.TenantWorkerParams[countArgs]{
		Load: d.LoadTenant,
		WorkFunc: func(ctx context.Context, j *river.Job[countArgs]) error {
			s := seen{attempt: j.Attempt}
			if t, ok := tenancy.FromContext(ctx); ok {
				s.tenant = t.ID
			}
			// No tenant filter in the query: row-level security, set by
			// InTenantTx from the context, is all that limits it.
			err := d.InTenantTx(ctx, func(_ *dbsqlc.Queries, tx pgx.Tx) error {
				return tx.QueryRow(ctx, "select count(*) from projects").Scan(&s.count)
			})
			f.seen <- s
			if err != nil {
				return err
			}
			if failFirst && j.Attempt == 1 {
				return errors.New("first attempt fails")
			}
			return nil
		},
	}))
	f.c, err = jobs.New(jobs.Params{Pool: d.Pool(), Workers: workers, RetryPolicy: retryNow{}})
	require.NoError(t, err)
	return f
}

func (f *fixture) start(t *testing.T) {
	t.Helper()
	require.NoError(t, f.c.Start(context.Background()))
	t.Cleanup(func() { _ = f.c.Stop(context.Background()) })
}

// tenant creates a tenant with n projects.
func (f *fixture) tenant(t *testing.T, slug string, n int) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	id := uuid.New()
	require.NoError(t, f.d.ActAs(ctx, id, func(q *dbsqlc.Queries) error {
		if _, err := q.TenantInsert(ctx, dbsqlc.TenantInsertParams{ID: id, Slug: slug, Name: slug, OwnerEmail: "o@x.example"}); err != nil {
			return err
		}
		for i := range n {
			if _, err := q.ProjectInsert(ctx, dbsqlc.ProjectInsertParams{TenantID: id, Name: fmt.Sprint("p", i)}); err != nil {
				return err
			}
		}
		return nil
	}))
	return id
}

// enqueue inserts a count job for id in id's own transaction.
func (f *fixture) enqueue(t *testing.T, id uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, f.d.ActAsTx(ctx, id, func(_ *dbsqlc.Queries, tx pgx.Tx) error {
		return f.c.InsertTx(ctx, tx, countArgs{TenantID: id})
	}))
}

func (f *fixture) next(t *testing.T) seen {
	t.Helper()
	select {
	case s := <-f.seen:
		return s
	case <-time.After(30 * time.Second):
		t.Fatal("no job attempt")
		return seen{}
	}
}

// TestTenantJobSeesOnlyItsTenant: a job for A, working under row-level
// security with A bound, counts A's projects and none of B's.
func TestTenantJobSeesOnlyItsTenant(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	a, b := f.tenant(t, "ta", 3), f.tenant(t, "tb", 2)
	f.enqueue(t, a)
	f.start(t)
	require.Equal(t, seen{attempt: 1, tenant: a, count: 3}, f.next(t))
	f.enqueue(t, b)
	require.Equal(t, seen{attempt: 1, tenant: b, count: 2}, f.next(t))
}

// TestTenantJobRetryKeepsTenant: the second attempt of a job whose first
// failed acts for the same tenant and sees the same rows.
func TestTenantJobRetryKeepsTenant(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	a := f.tenant(t, "ta", 2)
	f.tenant(t, "tb", 5)
	f.enqueue(t, a)
	f.start(t)
	require.Equal(t, seen{attempt: 1, tenant: a, count: 2}, f.next(t))
	require.Equal(t, seen{attempt: 2, tenant: a, count: 2}, f.next(t))
}

// TestTenantJobRolledBack: a request that fails after enqueueing leaves no
// job behind.
func TestTenantJobRolledBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	ctx := context.Background()
	a := f.tenant(t, "ta", 1)
	boom := errors.New("the request failed")
	err := f.d.ActAsTx(ctx, a, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		if _, err := q.ProjectInsert(ctx, dbsqlc.ProjectInsertParams{TenantID: a, Name: "half"}); err != nil {
			return err
		}
		if err := f.c.InsertTx(ctx, tx, countArgs{TenantID: a}); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	var n int
	require.NoError(t, f.owner.QueryRow(ctx, "select count(*) from river_job where kind = 'count_projects'").Scan(&n))
	require.Zero(t, n)
	f.enqueue(t, a)
	require.NoError(t, f.owner.QueryRow(ctx, "select count(*) from river_job where kind = 'count_projects' and args->>'tenant_id' = $1", a.String()).Scan(&n))
	require.Equal(t, 1, n, "the committed job is there, with its tenant in its arguments")
}

// TestTenantJobDropped: the job of a suspended tenant, of one whose
// deletion is pending, or of one that does not exist (deleted), is
// cancelled at its first attempt without running, not retried; the active
// tenant's job next to it runs.
func TestTenantJobDropped(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	ctx := context.Background()
	active, suspended, deleting, gone := f.tenant(t, "ta", 1), f.tenant(t, "tb", 1), f.tenant(t, "tc", 1), uuid.New()
	require.NoError(t, f.d.ActAs(ctx, suspended, func(q *dbsqlc.Queries) error {
		_, err := q.TenantSetStatus(ctx, dbsqlc.TenantSetStatusParams{ID: suspended, Status: "suspended"})
		return err
	}))
	require.NoError(t, f.d.ActAs(ctx, deleting, func(q *dbsqlc.Queries) error {
		_, err := q.TenantDeletionRequest(ctx, dbsqlc.TenantDeletionRequestParams{ID: deleting, GraceSeconds: 3600, RequestedBy: "platform"})
		return err
	}))
	events, cancel := f.c.Subscribe(river.EventKindJobCancelled, river.EventKindJobFailed)
	defer cancel()
	f.enqueue(t, suspended)
	f.enqueue(t, deleting)
	// A tenant that is gone cannot act, so its job is enqueued as the
	// job of a deleted tenant would have been: before the deletion.
	require.NoError(t, f.c.Insert(ctx, countArgs{TenantID: gone}))
	f.start(t)

	cancelled := map[uuid.UUID]*rivertype.JobRow{}
	for len(cancelled) < 3 {
		select {
		case e := <-events:
			require.Equal(t, river.EventKindJobCancelled, e.Kind, "dropped, not failed for a retry")
			cancelled[jobs.TenantOf(e.Job)] = e.Job
		case <-time.After(30 * time.Second):
			t.Fatal("the jobs were not cancelled")
		}
	}
	for _, id := range []uuid.UUID{suspended, deleting, gone} {
		j := cancelled[id]
		require.NotNil(t, j, "tenant %s's job", id)
		require.Equal(t, rivertype.JobStateCancelled, j.State)
		require.Equal(t, 1, j.Attempt)
		require.Len(t, j.Errors, 1)
		require.Contains(t, j.Errors[0].Error, id.String())
	}
	require.Contains(t, cancelled[suspended].Errors[0].Error, "suspended")
	require.Contains(t, cancelled[deleting].Errors[0].Error, "being deleted")
	require.Contains(t, cancelled[gone].Errors[0].Error, "gone")

	f.enqueue(t, active)
	require.Equal(t, seen{attempt: 1, tenant: active, count: 1}, f.next(t), "only the active tenant's job ran")
}

// TestListFailedAndRetry: a job that fails on every attempt ends among
// the failed jobs with its errors, filtered by tenant, and Retry makes it
// available again; a job that has not failed is not retried.
func TestListFailedAndRetry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true) // MaxAttempts 3; with failFirst only the first fails
	ctx := context.Background()
	a, b := f.tenant(t, "ta", 1), f.tenant(t, "tb", 1)
	events, cancel := f.c.Subscribe(river.EventKindJobCancelled, river.EventKindJobCompleted)
	defer cancel()
	require.NoError(t, f.d.ActAsTx(ctx, a, func(_ *dbsqlc.Queries, tx pgx.Tx) error {
		return f.c.InsertTx(ctx, tx, countArgs{TenantID: a})
	}))
	require.NoError(t, f.d.ActAs(ctx, b, func(q *dbsqlc.Queries) error {
		_, err := q.TenantSetStatus(ctx, dbsqlc.TenantSetStatusParams{ID: b, Status: "suspended"})
		return err
	}))
	f.enqueue(t, b)
	f.start(t)
	done := map[river.EventKind]*rivertype.JobRow{}
	for len(done) < 2 {
		select {
		case e := <-events:
			done[e.Kind] = e.Job
		case <-time.After(30 * time.Second):
			t.Fatal("the jobs did not finish")
		}
	}
	// a's job completed on its second attempt; b's was cancelled.
	require.Equal(t, a, jobs.TenantOf(done[river.EventKindJobCompleted]))
	require.Equal(t, b, jobs.TenantOf(done[river.EventKindJobCancelled]))

	all, err := f.c.ListFailed(ctx, jobs.ListFailedParams{Limit: 10})
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.Equal(t, done[river.EventKindJobCancelled].ID, all[0].ID)
	ofA, err := f.c.ListFailed(ctx, jobs.ListFailedParams{TenantID: a, Limit: 10})
	require.NoError(t, err)
	require.Empty(t, ofA)

	_, err = f.c.Retry(ctx, done[river.EventKindJobCompleted].ID)
	require.ErrorIs(t, err, jobs.ErrNotFailed)
	_, err = f.c.Retry(ctx, 1<<40)
	require.ErrorIs(t, err, db.ErrNotFound)
}
