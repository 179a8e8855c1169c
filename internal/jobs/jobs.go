// Package jobs runs Quarters' background jobs on River
// (github.com/riverqueue/river): jobs live in PostgreSQL next to the data
// that causes them, so a job is enqueued in the same transaction as its
// cause (InsertTx with the pgx.Tx of db.InTenantTx or db.ActAsTx) and
// commits or rolls back with it, and a worker works it at least once,
// retrying with backoff until it succeeds or runs out of attempts.
//
// River's schema is migrated by db.Migrate as the schema owner; the client
// runs as the app role, with the grants of 007_email_proof.sql.
package jobs

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/quarters-dev/quarters/db"
)

// DefaultMaxWorkers is how many jobs one replica works at once.
const DefaultMaxWorkers = 10

// Params are New's inputs.
type Params struct {
	// Pool connects as the app role; River's fetch, completion and
	// maintenance queries use it, and its listener holds one connection.
	Pool *pgxpool.Pool
	// Workers are the job kinds this client works (river.AddWorker).
	Workers *river.Workers
	// Logger receives River's logs; nil is slog.Default().
	Logger *slog.Logger
	// MaxWorkers bounds concurrent jobs (default DefaultMaxWorkers).
	MaxWorkers int
	// RetryPolicy schedules retries; nil is River's default (attempt^4
	// seconds, with jitter).
	RetryPolicy river.ClientRetryPolicy
	// StopTimeout bounds how long Run waits for running jobs at shutdown
	// (default DefaultStopTimeout); jobs cut short are retried later.
	StopTimeout time.Duration
	// PollOnly issues no LISTEN: River polls for new jobs (every
	// FetchPollInterval) and for leadership instead of being notified.
	// Required behind a pooler in transaction mode, where a LISTEN holds
	// nothing: the server connection it ran on goes on to serve others,
	// and their notifications reach whichever client holds it.
	PollOnly bool
	// FetchPollInterval is how often River looks for new jobs when it is
	// not notified of them (default River's, 1s).
	FetchPollInterval time.Duration
}

// DefaultStopTimeout is Params.StopTimeout's default.
const DefaultStopTimeout = 10 * time.Second

// Client enqueues and works jobs. Start it to work jobs; enqueueing works
// without Start.
type Client struct {
	river       *river.Client[pgx.Tx]
	stopTimeout time.Duration
}

// New returns a client; it does not connect.
func New(p Params) (*Client, error) {
	if p.Pool == nil || p.Workers == nil {
		return nil, errors.New("jobs: Params.Pool and Params.Workers are required")
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.MaxWorkers <= 0 {
		p.MaxWorkers = DefaultMaxWorkers
	}
	c, err := river.NewClient(riverpgxv5.New(p.Pool), &river.Config{
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: p.MaxWorkers}},
		Workers: p.Workers,
		// Tagged, so River's own lines (it retries its listener and
		// completer with backoff during a database outage) can be told
		// from Quarters'.
		Logger:      p.Logger.With("component", "river"),
		RetryPolicy: p.RetryPolicy,
		// The app role owns no index (db.CheckAppRole), so it may not
		// REINDEX River's; that is the schema owner's maintenance.
		ReindexerIndexNames: []string{},
		PollOnly:            p.PollOnly,
		FetchPollInterval:   p.FetchPollInterval,
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return &Client{river: c, stopTimeout: cmp.Or(p.StopTimeout, DefaultStopTimeout)}, nil
}

// InsertTx enqueues args in tx: the job exists only if tx commits.
func (c *Client) InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs) error {
	if _, err := c.river.InsertTx(ctx, tx, args, nil); err != nil {
		return fmt.Errorf("enqueue %s: %w", args.Kind(), err)
	}
	return nil
}

// ScheduleTx enqueues args in tx, to be worked at at (not before), and
// returns the job's id, for DeleteTx.
func (c *Client) ScheduleTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, at time.Time) (int64, error) {
	res, err := c.river.InsertTx(ctx, tx, args, &river.InsertOpts{ScheduledAt: at})
	if err != nil {
		return 0, fmt.Errorf("enqueue %s: %w", args.Kind(), err)
	}
	return res.Job.ID, nil
}

// DeleteTx deletes job id in tx, so it is never worked (a scheduled job
// whose cause is undone). A job that is gone already is no error; one
// that is running cannot be deleted (rivertype.ErrJobRunning, wrapped).
func (c *Client) DeleteTx(ctx context.Context, tx pgx.Tx, id int64) error {
	if _, err := c.river.JobDeleteTx(ctx, tx, id); err != nil && !errors.Is(err, rivertype.ErrNotFound) {
		return fmt.Errorf("delete job %d: %w", id, err)
	}
	return nil
}

// Insert enqueues args on its own, for jobs caused by nothing else the
// database keeps (a password reset request).
func (c *Client) Insert(ctx context.Context, args river.JobArgs) error {
	if _, err := c.river.Insert(ctx, args, nil); err != nil {
		return fmt.Errorf("enqueue %s: %w", args.Kind(), err)
	}
	return nil
}

// Start begins working jobs, until Stop (or ctx is cancelled, which stops
// at once). It returns an error if the database cannot be reached.
func (c *Client) Start(ctx context.Context) error {
	if err := c.river.Start(ctx); err != nil {
		return fmt.Errorf("jobs: start: %w", err)
	}
	return nil
}

// Stop stops fetching jobs and waits for the running ones to finish, or
// for ctx to end; a job cut short is retried later, by any replica.
func (c *Client) Stop(ctx context.Context) error {
	if err := c.river.Stop(ctx); err != nil {
		return fmt.Errorf("jobs: stop: %w", err)
	}
	return nil
}

// Run works jobs until ctx ends, then stops as Stop does, waiting at most
// Params.StopTimeout: the shape of every background loop internal/app
// supervises. It returns an error if the database cannot be reached at
// start.
func (c *Client) Run(ctx context.Context) error {
	// Not ctx itself: cancelling River's start context stops it at once,
	// abandoning running jobs instead of letting them finish.
	if err := c.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.stopTimeout)
	defer cancel()
	return c.Stop(sctx)
}

// Subscribe returns a channel of the events of the given kinds (jobs
// completed, failed, cancelled) of the jobs this client works, and the
// function that ends the subscription. Events beyond the channel's buffer
// are dropped. It panics before New's client could work jobs.
func (c *Client) Subscribe(kinds ...river.EventKind) (<-chan *river.Event, func()) {
	return c.river.Subscribe(kinds...)
}

// FailedStates are the states of the dead letters: jobs River gave up on,
// after their last attempt (discarded) or because a worker said another
// attempt could not help (cancelled, as TenantWorker does for a tenant
// that is gone or suspended).
var FailedStates = []rivertype.JobState{rivertype.JobStateDiscarded, rivertype.JobStateCancelled}

// ListFailedParams select a page of ListFailed.
type ListFailedParams struct {
	// TenantID, when set, keeps the jobs whose arguments name that tenant
	// (the "tenant_id" field of TenantArgs).
	TenantID uuid.UUID
	// BeforeTime and BeforeID are the position of the previous page's
	// last job; zero is the first page.
	BeforeTime time.Time
	BeforeID   int64
	// Limit bounds the jobs returned.
	Limit int
}

// ListFailed lists failed jobs (FailedStates), the last to fail first:
// by finalized_at, then id, both descending.
func (c *Client) ListFailed(ctx context.Context, p ListFailedParams) ([]*rivertype.JobRow, error) {
	lp := river.NewJobListParams().States(FailedStates...).
		OrderBy(river.JobListOrderByFinalizedAt, river.SortOrderDesc).First(max(p.Limit, 1))
	if !p.BeforeTime.IsZero() {
		lp = lp.Where("(finalized_at, id) < (@before_time, @before_id)",
			river.NamedArgs{"before_time": p.BeforeTime, "before_id": p.BeforeID})
	}
	if p.TenantID != uuid.Nil {
		lp = lp.Where("args->>'tenant_id' = @tenant_id", river.NamedArgs{"tenant_id": p.TenantID.String()})
	}
	res, err := c.river.JobList(ctx, lp)
	if err != nil {
		return nil, fmt.Errorf("list failed jobs: %w", err)
	}
	return res.Jobs, nil
}

// ErrNotFailed is Retry's error for a job that has not failed: retrying a
// completed job would do its work twice, a pending one is retried anyway.
var ErrNotFailed = errors.New("the job has not failed")

// Retry makes a failed job available again, with its attempts so far kept
// (River adds one more). It returns db.ErrNotFound for an unknown job and
// ErrNotFailed for one that is not in FailedStates.
func (c *Client) Retry(ctx context.Context, id int64) (*rivertype.JobRow, error) {
	j, err := c.river.JobGet(ctx, id)
	if errors.Is(err, rivertype.ErrNotFound) {
		return nil, db.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get job %d: %w", id, err)
	}
	if !slices.Contains(FailedStates, j.State) {
		return nil, fmt.Errorf("job %d is %s: %w", id, j.State, ErrNotFailed)
	}
	if j, err = c.river.JobRetry(ctx, id); err != nil {
		return nil, fmt.Errorf("retry job %d: %w", id, err)
	}
	return j, nil
}

// TenantOf is the tenant a job's arguments name ("tenant_id"), or
// uuid.Nil for a job that acts for none.
func TenantOf(j *rivertype.JobRow) uuid.UUID {
	var a struct {
		TenantID uuid.UUID `json:"tenant_id"`
	}
	_ = json.Unmarshal(j.EncodedArgs, &a) // not a tenant job: uuid.Nil
	return a.TenantID
}
