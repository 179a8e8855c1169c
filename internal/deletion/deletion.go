// Package deletion deletes tenants (issue 12): Schedule marks a tenant's
// deletion pending and enqueues its purge job in the same transaction;
// Cancel undoes both; the purge job (Args, NewWorker), due when the grace
// period ends, deletes every row of the tenant in one transaction through
// the privileged db.PurgeTenant, which also writes the deletion
// certificate, and then forgets the tenant outside PostgreSQL: every Redis
// key naming it and every replica's cached copies.
//
// A tenant whose deletion is pending is refused like a suspended one by
// the tenant interceptor, but for the RPCs whose access rule says
// while_deleting. Its ordinary jobs are dropped by jobs.TenantWorker, so
// the purge job is not one: it runs for a tenant nobody may use.
package deletion

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	"github.com/quarters-dev/quarters/internal/jobs"
	"github.com/quarters-dev/quarters/internal/notify"
	"github.com/quarters-dev/quarters/internal/tenant"
)

// DefaultGrace is how long a deleted tenant waits for its purge
// (QUARTERS_TENANT_DELETION_GRACE's default): a week in which its owner
// can export the data or change their mind.
const DefaultGrace = 7 * 24 * time.Hour

// ActorPlatform is the requested_by of a deletion the operator asked for.
const ActorPlatform = "platform"

// ActorOwner is the requested_by of a deletion the owner userID asked
// for; "owner:api-key" for an owner's API key.
func ActorOwner(userID uuid.UUID) string {
	if userID == uuid.Nil {
		return "owner:api-key"
	}
	return "owner:" + userID.String()
}

// Schedule marks tenant id's deletion pending, due grace from now, and
// enqueues its purge job for then (grace 0: DefaultGrace) and a notice to each owner and admin
// (notify.DeletionScheduled), in tx (which acts for the tenant: q is
// its Queries). by is who asks (ActorOwner, ActorPlatform). A deletion
// already pending is left as it is: Schedule returns the tenant with its
// purge_time and created false. It returns db.ErrNotFound for an unknown
// tenant.
func Schedule(ctx context.Context, q *dbsqlc.Queries, tx pgx.Tx, jc *jobs.Client, id uuid.UUID, by string, grace time.Duration) (t dbsqlc.Tenant, created bool, err error) {
	if grace <= 0 {
		grace = DefaultGrace
	}
	t, err = q.TenantDeletionRequest(ctx, dbsqlc.TenantDeletionRequestParams{ID: id, GraceSeconds: grace.Seconds(), RequestedBy: by})
	if errors.Is(err, db.ErrNotFound) {
		// Pending already, or no such tenant.
		t, err = q.TenantGet(ctx, id)
		return t, false, err
	}
	if err != nil {
		return t, false, fmt.Errorf("request deletion: %w", err)
	}
	job, err := jc.ScheduleTx(ctx, tx, Args{TenantID: id}, *t.PurgeTime)
	if err != nil {
		return t, false, err
	}
	if err := q.TenantSetPurgeJob(ctx, dbsqlc.TenantSetPurgeJobParams{ID: id, PurgeJobID: &job}); err != nil {
		return t, false, fmt.Errorf("record purge job: %w", err)
	}
	t.PurgeJobID = &job
	// Every owner and admin is told, in this transaction: the notice goes
	// if and only if the deletion is requested.
	managers, err := q.MembershipManagers(ctx, id)
	if err != nil {
		return t, false, fmt.Errorf("list owners and admins: %w", err)
	}
	for _, uid := range managers {
		if err := jc.InsertTx(ctx, tx, notify.DeletionScheduled(id, uid)); err != nil {
			return t, false, err
		}
	}
	return t, true, nil
}

// Audit records, in the tenant's audit trail, a change of its purge_time
// from before to after (nil: none) by actor through action. The trail is
// the tenant's rows, so the purge deletes it; the certificate outlives it.
func Audit(ctx context.Context, q *dbsqlc.Queries, id uuid.UUID, actor, action string, before, after *time.Time) (dbsqlc.AuditEvent, error) {
	b, err := json.Marshal(map[string]*time.Time{"purge_time": before})
	if err != nil {
		return dbsqlc.AuditEvent{}, fmt.Errorf("encode audit before: %w", err)
	}
	a, err := json.Marshal(map[string]*time.Time{"purge_time": after})
	if err != nil {
		return dbsqlc.AuditEvent{}, fmt.Errorf("encode audit after: %w", err)
	}
	ev, err := q.AuditEventInsert(ctx, dbsqlc.AuditEventInsertParams{TenantID: id, Actor: actor, Action: action, Before: b, After: a})
	if err != nil {
		return ev, fmt.Errorf("insert audit event: %w", err)
	}
	return ev, nil
}

// ErrNotPending is Cancel's error when no deletion is pending: a
// FAILED_PRECONDITION.
var ErrNotPending = connect.NewError(connect.CodeFailedPrecondition, errors.New("no deletion of this tenant is pending"))

// Cancel cancels tenant id's pending deletion and deletes its purge job,
// in tx (acting for the tenant). It returns ErrNotPending if none is
// pending, and an UNAVAILABLE error if the purge is running right now.
func Cancel(ctx context.Context, q *dbsqlc.Queries, tx pgx.Tx, jc *jobs.Client, id uuid.UUID) (dbsqlc.Tenant, error) {
	before, err := q.TenantGetForUpdate(ctx, id)
	if err != nil {
		return before, err
	}
	t, err := q.TenantDeletionCancel(ctx, id)
	if errors.Is(err, db.ErrNotFound) {
		return t, ErrNotPending
	}
	if err != nil {
		return t, fmt.Errorf("cancel deletion: %w", err)
	}
	if before.PurgeJobID != nil {
		if err := jc.DeleteTx(ctx, tx, *before.PurgeJobID); err != nil {
			return t, connect.NewError(connect.CodeUnavailable, fmt.Errorf("the purge could not be stopped; retry shortly: %w", err))
		}
	}
	return t, nil
}

// Args are the purge job's arguments. tenant_id is the field every tenant
// job names its tenant with, so the operator's list of failed jobs finds a
// failing purge by tenant.
type Args struct {
	TenantID uuid.UUID `json:"tenant_id"`
}

// Kind is River's job kind.
func (Args) Kind() string { return "tenant_purge" }

// InsertOpts: a purge that keeps failing (River retries with backoff) is
// for the operator (PlatformService.ListFailedJobs, RetryJob); each
// attempt is all or nothing.
func (Args) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 10} }

// WorkerParams are NewWorker's inputs.
type WorkerParams struct {
	DB *db.DB
	// Tenants is the tenant cache: the purged tenant's record is dropped
	// from every replica.
	Tenants *tenant.Cache
	// Redis, when set, is searched for every key naming the tenant, which
	// are deleted. Nil: nothing is kept in Redis.
	Redis  redis.UniversalClient
	Logger *slog.Logger
}

// Worker is the purge job's worker.
type Worker struct {
	river.WorkerDefaults[Args]
	p WorkerParams
}

// NewWorker returns the purge job's worker, for river.AddWorker.
func NewWorker(p WorkerParams) *Worker {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	return &Worker{p: p}
}

// notDueSnooze is how long a purge job that ran before its tenant's
// purge_time (clocks apart) waits before it looks again.
const notDueSnooze = time.Minute

// Work purges the tenant if its deletion is pending and due (an error
// rolls the whole purge back, and River retries it), then forgets it in
// Redis and in every replica's caches. A tenant gone already (a retry
// after the purge committed) is forgotten again, since that is what may
// have failed; a cancelled deletion leaves the job nothing to do.
func (w *Worker) Work(ctx context.Context, job *river.Job[Args]) error {
	id := job.Args.TenantID
	if id == uuid.Nil {
		return river.JobCancel(fmt.Errorf("tenant_purge job %d: %w", job.ID, jobs.ErrNoTenant))
	}
	out, err := w.p.DB.PurgeTenant(ctx, id, job.ID)
	if err != nil {
		return err
	}
	log := w.p.Logger.With("tenant_id", id, "job_id", job.ID)
	switch out {
	case db.PurgeNotPending:
		log.InfoContext(ctx, "tenant purge: the deletion was cancelled; nothing to do")
		return nil
	case db.PurgeNotDue:
		return river.JobSnooze(notDueSnooze)
	case db.PurgePurged:
		log.InfoContext(ctx, "tenant purged")
	}
	return Forget(ctx, w.p.Tenants, w.p.Redis, id)
}

// Forget drops every trace of a purged tenant outside PostgreSQL: its
// record in every replica's tenant cache (and, with it, their cached API
// keys: tenant.Cache.OnDrop), then every Redis key whose name contains
// the tenant's id, whatever its prefix (the tenant cache's records and
// generation, the rate limiter's buckets, and any added later), found
// with SCAN on every master. The invalidation comes first because it
// writes a generation key, which the sweep then deletes.
func Forget(ctx context.Context, tenants *tenant.Cache, rdb redis.UniversalClient, id uuid.UUID) error {
	if err := tenants.Invalidate(ctx, id); err != nil {
		return fmt.Errorf("forget tenant %s: %w", id, err)
	}
	if rdb == nil {
		return nil
	}
	sweep := func(ctx context.Context, c *redis.Client) error { return deleteKeys(ctx, c, "*"+id.String()+"*") }
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, sweep)
	}
	c, ok := rdb.(*redis.Client)
	if !ok {
		return fmt.Errorf("forget tenant %s: redis client %T: want *redis.Client or *redis.ClusterClient", id, rdb)
	}
	return sweep(ctx, c)
}

// deleteKeys deletes every key of c matching pattern, a SCAN page at a
// time (never KEYS, which blocks the server).
func deleteKeys(ctx context.Context, c *redis.Client, pattern string) error {
	iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		// One key per DEL keeps it valid on a cluster, where a
		// multi-key command's keys must share a slot.
		pipe := c.Pipeline()
		for _, k := range batch {
			pipe.Del(ctx, k)
		}
		_, err := pipe.Exec(ctx)
		batch = batch[:0]
		return err
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := flush(); err != nil {
				return fmt.Errorf("delete redis keys %s: %w", pattern, err)
			}
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("scan redis keys %s: %w", pattern, err)
	}
	if err := flush(); err != nil {
		return fmt.Errorf("delete redis keys %s: %w", pattern, err)
	}
	return nil
}

// ConfirmMatches reports whether confirm, the slug a person typed back,
// is slug: exactly, but for surrounding whitespace.
func ConfirmMatches(confirm, slug string) bool { return strings.TrimSpace(confirm) == slug }
