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
	"github.com/riverqueue/river"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
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
}

// Worker works delivery jobs.
type Worker struct {
	river.WorkerDefaults[DeliverArgs]
	db            *db.DB
	client        *http.Client
	allowLoopback bool
	timeout       time.Duration
	logger        *slog.Logger
}

// NewWorker returns the delivery worker, for river.AddWorker.
func NewWorker(p WorkerParams) *Worker {
	opts := p.Client
	if opts == nil {
		opts = &ClientOpts{}
	}
	w := &Worker{db: p.DB, client: NewClient(opts), allowLoopback: opts.AllowLoopback, timeout: opts.Timeout, logger: p.Logger}
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
	if err := w.db.InTenant(rctx, func(q *dbsqlc.Queries) error {
		if err := q.WebhookDeliveryRecord(rctx, rec); err != nil {
			return err
		}
		if rec.Status != StatusFailed {
			return nil
		}
		return disableFailing(rctx, q, t.ID, d, rec.Error)
	}); err != nil {
		return err
	}
	if failure != nil {
		return fmt.Errorf("webhook delivery %s: %w", d.ID, failure)
	}
	return nil
}

// disableFailing disables the endpoint of a delivery that failed for good
// unless another delivery to it succeeded meanwhile, and records that in
// the tenant's audit log, so neither a dead receiver keeps costing a day
// of retries per event nor does the endpoint go quiet unexplained.
func disableFailing(ctx context.Context, q *dbsqlc.Queries, tenantID uuid.UUID, d dbsqlc.WebhookDeliveryForSendRow, lastError string) error {
	reason := fmt.Sprintf("every delivery attempt failed for %d attempts (last: %s)", MaxAttempts, lastError)
	n, err := q.WebhookEndpointDisableFailing(ctx, dbsqlc.WebhookEndpointDisableFailingParams{TenantID: tenantID, DeliveryID: d.ID, Reason: reason})
	if err != nil || n == 0 {
		return err
	}
	before, _ := json.Marshal(map[string]any{"endpoint_id": d.EndpointID, "enabled": true})
	after, _ := json.Marshal(map[string]any{"endpoint_id": d.EndpointID, "enabled": false, "reason": reason})
	_, err = q.AuditEventInsert(ctx, dbsqlc.AuditEventInsertParams{
		TenantID: tenantID, Actor: "webhooks", Action: "DisableWebhookEndpoint", Before: before, After: after,
	})
	return err
}
