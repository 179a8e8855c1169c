package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	"github.com/quarters-dev/quarters/internal/jobs"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// DeliverArgs are the delivery job's arguments: which tenant, which
// delivery. They hold neither the payload nor a secret; the worker reads
// both under the tenant's row-level security.
type DeliverArgs struct {
	TenantID   uuid.UUID `json:"tenant_id"`
	DeliveryID uuid.UUID `json:"delivery_id"`
}

// Kind is River's job kind.
func (DeliverArgs) Kind() string { return "webhook_delivery" }

// InsertOpts bound the attempts: MaxAttempts, spread over about a day by
// the worker's NextRetry.
func (DeliverArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: MaxAttempts} }

// payload is the delivered body, in Standard Webhooks' shape.
type payload struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// InTx runs fn in the request's tenant transaction for a change that may
// Emit. Only a tenant with the feature can have subscribers, and only then
// is the pgx.Tx needed (the delivery jobs are enqueued in it), so only
// then does it take db.InTenantTx's eager transaction; every other tenant
// gets db.InTenant's, one round trip shorter, and fn a nil tx, which Emit
// never touches for them.
func InTx(ctx context.Context, d *db.DB, fn func(q *dbsqlc.Queries, tx pgx.Tx) error) error {
	if !tenancy.MustFromContext(ctx).Has(Feature) {
		return d.InTenant(ctx, func(q *dbsqlc.Queries) error { return fn(q, nil) })
	}
	return d.InTenantTx(ctx, fn)
}

// ActAsTx is InTx for a change made acting for t before the request is
// bound to it (db.ActAs: AcceptInvitation, whose caller is not yet a
// member): the eager transaction only for a tenant with the feature.
func ActAsTx(ctx context.Context, d *db.DB, t tenancy.Tenant, fn func(q *dbsqlc.Queries, tx pgx.Tx) error) error {
	if !t.Has(Feature) {
		return d.ActAs(ctx, t.ID, func(q *dbsqlc.Queries) error { return fn(q, nil) })
	}
	return d.ActAsTx(ctx, t.ID, fn)
}

// Emit records an event of eventType about data (a resource as the API
// returns it, in the API's JSON) for tenant t, in tx: the event, a
// pending delivery to each enabled endpoint subscribed to the type, and a
// delivery job for each, all committing or rolling back with the change
// that caused them. Tenants without the feature get nothing written.
// q must be the Queries of tx (db.InTenantTx gives both).
func Emit(ctx context.Context, q *dbsqlc.Queries, tx pgx.Tx, j *jobs.Client, t tenancy.Tenant, eventType string, data proto.Message) error {
	if !t.Has(Feature) {
		return nil
	}
	d, err := protojson.Marshal(data)
	if err != nil {
		return fmt.Errorf("webhook event %s: %w", eventType, err)
	}
	body, err := json.Marshal(payload{Type: eventType, Timestamp: time.Now().UTC().Truncate(time.Millisecond), Data: d})
	if err != nil {
		return fmt.Errorf("webhook event %s: %w", eventType, err)
	}
	ids, err := q.WebhookEventInsert(ctx, dbsqlc.WebhookEventInsertParams{TenantID: t.ID, Type: eventType, Payload: body})
	if err != nil {
		return fmt.Errorf("insert webhook event: %w", err)
	}
	for _, id := range ids {
		if err := j.InsertTx(ctx, tx, DeliverArgs{TenantID: t.ID, DeliveryID: id}); err != nil {
			return err
		}
	}
	return nil
}

// Enqueue enqueues the job of an existing pending delivery (Redeliver).
func Enqueue(ctx context.Context, tx pgx.Tx, j *jobs.Client, tenantID, deliveryID uuid.UUID) error {
	return j.InsertTx(ctx, tx, DeliverArgs{TenantID: tenantID, DeliveryID: deliveryID})
}
