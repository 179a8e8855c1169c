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
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
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
