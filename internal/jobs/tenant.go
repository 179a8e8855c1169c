package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// TenantArgs are the arguments of a job that acts for one tenant. By
// convention they carry the tenant's id as the JSON field "tenant_id", so
// the operator's list of failed jobs (ListFailed) names each job's tenant
// without knowing its kind.
//
// Such a job is enqueued with InsertTx inside the tenant's own transaction
// (db.InTenantTx or db.ActAsTx), so a request that rolls back leaves no
// job, and is worked by a TenantWorker, which binds the tenant again.
type TenantArgs interface {
	river.JobArgs
	// JobTenant is the tenant the job acts for.
	JobTenant() uuid.UUID
}

// LoadTenantFunc reads a tenant's record: the tenant cache's Get, or
// db.LoadTenant. It returns db.ErrNotFound for a tenant that is gone.
type LoadTenantFunc func(ctx context.Context, id uuid.UUID) (tenancy.Tenant, error)

// TenantWorkerParams are NewTenantWorker's inputs.
type TenantWorkerParams[T TenantArgs] struct {
	// Load reads the job's tenant before every attempt.
	Load LoadTenantFunc
	// WorkFunc does the job. Its context carries the tenant
	// (tenancy.FromContext), so db.InTenant and db.InTenantTx act for it
	// under row-level security, as a request of that tenant would.
	WorkFunc func(ctx context.Context, job *river.Job[T]) error
	// Logger receives the jobs dropped for a tenant that is gone or
	// suspended; nil is slog.Default().
	Logger *slog.Logger
	// Suspended says the job also runs for a suspended tenant; by default
	// such jobs are dropped.
	Suspended bool
	// Deleting says the job also runs for a tenant whose deletion is
	// pending (an export its owner takes before the purge); by default
	// such jobs are dropped, like a suspended tenant's.
	Deleting bool
}

// TenantWorker works a job kind that acts for a tenant: before each
// attempt it reads the tenant again (its plan, limits and status may have
// changed since the job was enqueued) and binds it to the attempt's
// context. A job whose tenant is gone, or suspended, is cancelled with a
// log line (river.JobCancel) instead of retried until its attempts run
// out: neither state is one another attempt would change soon, and a
// resumed tenant's next action enqueues anew.
//
// Retries keep the tenant: it comes from the job's arguments, stored with
// the job, never from whatever context the worker runs in.
type TenantWorker[T TenantArgs] struct {
	river.WorkerDefaults[T]
	p TenantWorkerParams[T]
}

// NewTenantWorker returns the worker, for river.AddWorker.
func NewTenantWorker[T TenantArgs](p TenantWorkerParams[T]) *TenantWorker[T] {
	if p.Load == nil || p.WorkFunc == nil {
		panic("jobs: TenantWorkerParams.Load and WorkFunc are required")
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	return &TenantWorker[T]{p: p}
}

// ErrNoTenant is the cancellation cause of a tenant job whose arguments
// name no tenant: a programming error no retry can fix.
var ErrNoTenant = errors.New("job names no tenant")

// Work loads the job's tenant, drops the job if the tenant is gone or
// suspended, and otherwise runs WorkFunc acting for it. A failure to load
// the tenant (the database is down) is returned, so River retries.
func (w *TenantWorker[T]) Work(ctx context.Context, job *river.Job[T]) error {
	id := job.Args.JobTenant()
	if id == uuid.Nil {
		return river.JobCancel(fmt.Errorf("%s job %d: %w", job.Kind, job.ID, ErrNoTenant))
	}
	t, err := w.p.Load(ctx, id)
	if errors.Is(err, db.ErrNotFound) {
		w.p.Logger.InfoContext(ctx, "job dropped: its tenant is gone", "kind", job.Kind, "job_id", job.ID, "tenant_id", id)
		return river.JobCancel(fmt.Errorf("tenant %s is gone", id))
	}
	if err != nil {
		return fmt.Errorf("load tenant %s: %w", id, err)
	}
	if t.Deleting && !w.p.Deleting {
		w.p.Logger.InfoContext(ctx, "job dropped: its tenant's deletion is pending", "kind", job.Kind, "job_id", job.ID, "tenant_id", id)
		return river.JobCancel(fmt.Errorf("tenant %s is being deleted", id))
	}
	if !t.Active && !t.Deleting && !w.p.Suspended {
		w.p.Logger.InfoContext(ctx, "job dropped: its tenant is suspended", "kind", job.Kind, "job_id", job.ID, "tenant_id", id)
		return river.JobCancel(fmt.Errorf("tenant %s is suspended", id))
	}
	return w.p.WorkFunc(tenancy.NewContext(ctx, t), job)
}
