package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	"github.com/quarters-dev/quarters/internal/jobs"
	"github.com/quarters-dev/quarters/internal/notify"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// Retry schedule: attempt n failing waits RetryBase·2^(n-1) (±10 %), so
// the MaxAttempts-1 retries span RetryBase·(2^12-1) ≈ 22.8 hours.
const (
	MaxAttempts = 13
	RetryBase   = 20 * time.Second
)

// The statuses of webhook_deliveries.
const (
	StatusPending   = "pending"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// WorkerParams are NewWorker's inputs.
type WorkerParams struct {
	DB *db.DB
	// Client opts: loopback for development, the attempt's timeout.
	Client *ClientOpts
	// Logger receives dropped deliveries; nil is slog.Default().
	Logger *slog.Logger
	// Jobs enqueues the mails telling a tenant its endpoint was
	// disabled. Nil: the River client working the job does (the worker
	// registered in internal/app, which exists before that client);
	// tests that call Work directly pass one.
	Jobs *jobs.Client
}

// Worker works delivery jobs.
type Worker struct {
	river.WorkerDefaults[DeliverArgs]
	db            *db.DB
	client        *http.Client
	allowLoopback bool
	timeout       time.Duration
	logger        *slog.Logger
	jobs          *jobs.Client
}

// NewWorker returns the delivery worker, for river.AddWorker.
func NewWorker(p WorkerParams) *Worker {
	opts := p.Client
	if opts == nil {
		opts = &ClientOpts{}
	}
	w := &Worker{db: p.DB, client: NewClient(opts), allowLoopback: opts.AllowLoopback, timeout: opts.Timeout, logger: p.Logger, jobs: p.Jobs}
	if w.timeout <= 0 {
		w.timeout = DefaultTimeout
	}
	if w.logger == nil {
		w.logger = slog.Default()
	}
	return w
}

// NextRetry spreads the attempts over about a day (see RetryBase).
func (w *Worker) NextRetry(job *river.Job[DeliverArgs]) time.Time {
	return time.Now().Add(Backoff(job.Attempt))
}

// Backoff is the wait after failed attempt n (1-based).
func Backoff(n int) time.Duration {
	d := RetryBase << min(max(n-1, 0), 20)
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}

// Timeout leaves the attempt's HTTP timeout room for the two short
// transactions around it.
func (w *Worker) Timeout(*river.Job[DeliverArgs]) time.Duration { return w.timeout + 10*time.Second }

// Work makes one attempt at a delivery, acting for its tenant under
// row-level security. A delivery whose tenant, endpoint or delivery row is
// gone, whose tenant is suspended or has lost the feature, or whose
// endpoint is disabled is dropped with a log line (and, where the row
// remains, marked failed), not retried. A receiver that does not answer
// 2xx makes River retry, with the backoff of NextRetry.
func (w *Worker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	a := job.Args
	log := w.logger.With("tenant_id", a.TenantID, "delivery_id", a.DeliveryID, "job_id", job.ID)
	t, err := w.db.LoadTenant(ctx, a.TenantID)
	if errors.Is(err, db.ErrNotFound) {
		log.InfoContext(ctx, "webhook: tenant gone; delivery dropped")
		return nil
	}
	if err != nil {
		return err
	}
	ctx = tenancy.NewContext(ctx, t)
	var d dbsqlc.WebhookDeliveryForSendRow
	err = w.db.InTenant(ctx, func(q *dbsqlc.Queries) error {
		d, err = q.WebhookDeliveryForSend(ctx, dbsqlc.WebhookDeliveryForSendParams{TenantID: t.ID, ID: a.DeliveryID})
		return err
	})
	if errors.Is(err, db.ErrNotFound) {
		log.InfoContext(ctx, "webhook: delivery or endpoint deleted; delivery dropped")
		return nil
	}
	if err != nil {
		return err
	}
	if d.Status != StatusPending {
		return nil // already settled: a duplicate job
	}
	drop := ""
	switch {
	case !t.Active:
		drop = "tenant suspended"
	case !t.Has(Feature):
		drop = "feature " + Feature + " not available on the tenant's plan"
	case !d.Enabled:
		drop = "endpoint disabled"
	default:
		if err := CheckURL(d.Url, w.allowLoopback); err != nil {
			drop = err.Error()
		}
	}
	if drop != "" {
		log.InfoContext(ctx, "webhook: delivery dropped", "reason", drop)
		return w.db.InTenant(ctx, func(q *dbsqlc.Queries) error {
			return q.WebhookDeliveryFail(ctx, dbsqlc.WebhookDeliveryFailParams{TenantID: t.ID, ID: d.ID, Error: drop})
		})
	}

	id, now := d.EventID.String(), time.Now()
	sig, err := SignatureHeader([]string{d.Secret, d.PreviousSecret}, id, now, d.Payload)
	if err != nil {
		return river.JobCancel(err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "Quarters-Webhooks/1")
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", sig)
	pctx, cancel := context.WithTimeout(ctx, w.timeout)
	code, perr := post(pctx, w.client, d.Url, h, d.Payload)
	cancel()

	rec := dbsqlc.WebhookDeliveryRecordParams{TenantID: t.ID, ID: d.ID, Status: StatusSucceeded}
	if code != 0 {
		c := int32(code)
		rec.ResponseCode = &c
	}
	var failure error
	switch {
	case perr != nil:
		failure = perr
	case code < 200 || code > 299:
		failure = fmt.Errorf("receiver answered %d", code)
	}
	if failure != nil {
		rec.Status, rec.Error = StatusPending, failure.Error()
		if job.Attempt >= job.MaxAttempts {
			rec.Status = StatusFailed
		}
	}
	// Recorded after the attempt, in a transaction of its own: a failure
	// to record retries the job, and the receiver may see the message
	// twice (at least once; it deduplicates on webhook-id).
	rctx := context.WithoutCancel(ctx)
	var rerr error
	if rec.Status != StatusFailed {
		rerr = w.db.InTenant(rctx, func(q *dbsqlc.Queries) error { return q.WebhookDeliveryRecord(rctx, rec) })
	} else {
		// The last attempt: the endpoint may be disabled, and the mails
		// telling the tenant enqueued, in this transaction (hence a pgx.Tx).
		rerr = w.db.InTenantTx(rctx, func(q *dbsqlc.Queries, tx pgx.Tx) error {
			if err := q.WebhookDeliveryRecord(rctx, rec); err != nil {
				return err
			}
			return w.disableFailing(rctx, q, tx, t.ID, d, rec.Error)
		})
	}
	if rerr != nil {
		return rerr
	}
	if failure != nil {
		return fmt.Errorf("webhook delivery %s: %w", d.ID, failure)
	}
	return nil
}

// disableFailing disables the endpoint of a delivery that failed for good
// unless another delivery to it succeeded meanwhile, records that in the
// tenant's audit log, and enqueues a mail to each of the tenant's owners
// and admins, all in tx: so neither a dead receiver keeps costing a day
// of retries per event nor does the endpoint go quiet unexplained.
func (w *Worker) disableFailing(ctx context.Context, q *dbsqlc.Queries, tx pgx.Tx, tenantID uuid.UUID, d dbsqlc.WebhookDeliveryForSendRow, lastError string) error {
	reason := fmt.Sprintf("every delivery attempt failed for %d attempts (last: %s)", MaxAttempts, lastError)
	n, err := q.WebhookEndpointDisableFailing(ctx, dbsqlc.WebhookEndpointDisableFailingParams{TenantID: tenantID, DeliveryID: d.ID, Reason: reason})
	if err != nil || n == 0 {
		return err
	}
	before, _ := json.Marshal(map[string]any{"endpoint_id": d.EndpointID, "enabled": true})
	after, _ := json.Marshal(map[string]any{"endpoint_id": d.EndpointID, "enabled": false, "reason": reason})
	if _, err := q.AuditEventInsert(ctx, dbsqlc.AuditEventInsertParams{
		TenantID: tenantID, Actor: "webhooks", Action: "DisableWebhookEndpoint", Before: before, After: after,
	}); err != nil {
		return err
	}
	managers, err := q.MembershipManagers(ctx, tenantID)
	if err != nil {
		return fmt.Errorf("list owners and admins: %w", err)
	}
	// One job per person: a retried mail goes to that person again, not
	// to everyone.
	for _, userID := range managers {
		if err := w.insertTx(ctx, tx, notify.WebhookDisabled(tenantID, d.EndpointID, userID)); err != nil {
			return err
		}
	}
	return nil
}

// insertTx enqueues args in tx with Params.Jobs, or else with the River
// client working the current job.
func (w *Worker) insertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs) error {
	if w.jobs != nil {
		return w.jobs.InsertTx(ctx, tx, args)
	}
	c, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err == nil {
		_, err = c.InsertTx(ctx, tx, args, nil)
	}
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", args.Kind(), err)
	}
	return nil
}
