package webhooksvc_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/servertest"
	"github.com/quarters-dev/quarters/internal/tenancy"
	"github.com/quarters-dev/quarters/internal/webhook"
)

// received is one message a receiver accepted.
type received struct {
	id, signature string
	timestamp     time.Time
	body          []byte
	event         struct {
		Type      string          `json:"type"`
		Timestamp time.Time       `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
}

// receiver is a local webhook receiver: it answers status (200 unless
// set), and hands every message whose signature verifies under one of the
// secrets it knows to got; a message that does not verify fails the test.
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	secrets atomic.Pointer[[]string]
	status  atomic.Int32
	got     chan received
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, got: make(chan received, 16)}
	r.status.Store(http.StatusOK)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var m received
		m.id, m.signature = req.Header.Get("webhook-id"), req.Header.Get("webhook-signature")
		sec, err := strconv.ParseInt(req.Header.Get("webhook-timestamp"), 10, 64)
		if err != nil {
			r.t.Errorf("webhook-timestamp %q: %v", req.Header.Get("webhook-timestamp"), err)
		}
		m.timestamp = time.Unix(sec, 0)
		m.body, _ = io.ReadAll(req.Body)
		ok := false
		for _, s := range *r.secrets.Load() {
			ok = ok || webhook.Verify(s, m.signature, m.id, m.timestamp, m.body)
		}
		if !ok || req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
			r.t.Errorf("unverified or malformed message: %s %s %q", req.Method, m.signature, m.body)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if err := json.Unmarshal(m.body, &m.event); err != nil {
			r.t.Errorf("body %q: %v", m.body, err)
		}
		w.WriteHeader(int(r.status.Load()))
		select {
		case r.got <- m:
		default: // a late retry nobody waits for must not hold srv.Close
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) trust(secrets ...string) { r.secrets.Store(&secrets) }

func (r *receiver) next(t *testing.T) received {
	t.Helper()
	select {
	case m := <-r.got:
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("no webhook arrived")
		return received{}
	}
}

// waitDelivery polls ListDeliveries until the delivery has settled into
// want (the worker records after the receiver answers).
func waitDelivery(t *testing.T, wh quartersv1connect.WebhookServiceClient, endpointID string, want func(*quartersv1.WebhookDelivery) bool) *quartersv1.WebhookDelivery {
	t.Helper()
	var last []*quartersv1.WebhookDelivery
	for range 300 {
		resp, err := wh.ListDeliveries(ctx, req(&quartersv1.ListDeliveriesRequest{EndpointId: endpointID}))
		require.NoError(t, err)
		last = resp.Msg.GetDeliveries()
		for _, d := range last {
			if want(d) {
				return d
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no delivery as wanted among %v", last)
	return nil
}

// TestDelivery: project events reach a local receiver signed per Standard
// Webhooks; deliveries are listed with status and response code; a
// redelivery carries the same webhook-id; during a rotation both secrets
// sign.
func TestDelivery(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := enterprise(t, s)
	wh := webhooks(s, a)
	r := newReceiver(t)
	created, err := wh.CreateEndpoint(ctx, req(&quartersv1.CreateEndpointRequest{
		Url: r.srv.URL + "/hooks", EventTypes: []string{"project.created", "project.updated", "project.deleted"}, Enabled: true,
	}))
	require.NoError(t, err)
	endpointID, secret := created.Msg.GetEndpoint().GetId(), created.Msg.GetSecret()
	r.trust(secret)

	p := apitest.CreateProject(t, a, "Apollo")
	m := r.next(t)
	require.Equal(t, "project.created", m.event.Type)
	var data quartersv1.Project
	require.NoError(t, json.Unmarshal(m.event.Data, &struct {
		ID   *string `json:"id"`
		Name *string `json:"name"`
	}{&data.Id, &data.Name}))
	require.Equal(t, p.GetId(), data.GetId())
	require.Equal(t, "Apollo", data.GetName())
	require.WithinDuration(t, time.Now(), m.timestamp, time.Minute)
	require.Len(t, m.signature, len("v1,")+44, "one secret, one signature")

	d := waitDelivery(t, wh, endpointID, func(d *quartersv1.WebhookDelivery) bool {
		return d.GetStatus() == quartersv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	})
	require.Equal(t, m.id, d.GetEventId())
	require.Equal(t, "project.created", d.GetEventType())
	require.Equal(t, int32(200), d.GetResponseCode())
	require.Equal(t, int32(1), d.GetAttempts())
	require.NotNil(t, d.GetLastAttemptTime())

	// Redeliver: a new delivery, the same message id.
	again, err := wh.Redeliver(ctx, req(&quartersv1.RedeliverRequest{DeliveryId: d.GetId()}))
	require.NoError(t, err)
	require.NotEqual(t, d.GetId(), again.Msg.GetDelivery().GetId())
	require.Equal(t, d.GetEventId(), again.Msg.GetDelivery().GetEventId())
	m2 := r.next(t)
	require.Equal(t, m.id, m2.id)
	require.Equal(t, m.body, m2.body)

	// Rotation: the next message verifies under the old secret and under
	// the new one alone.
	rot, err := wh.RotateSecret(ctx, req(&quartersv1.RotateSecretRequest{Id: endpointID}))
	require.NoError(t, err)
	r.trust(secret, rot.Msg.GetSecret())
	_, err = a.Projects.UpdateProject(ctx, req(&quartersv1.UpdateProjectRequest{
		Project: &quartersv1.Project{Id: p.GetId(), Name: "Artemis"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
	}))
	require.NoError(t, err)
	m3 := r.next(t)
	require.Equal(t, "project.updated", m3.event.Type)
	require.True(t, webhook.Verify(secret, m3.signature, m3.id, m3.timestamp, m3.body))
	require.True(t, webhook.Verify(rot.Msg.GetSecret(), m3.signature, m3.id, m3.timestamp, m3.body))

	// A receiver error is recorded, with its status, and left pending for
	// the retries.
	r.status.Store(http.StatusServiceUnavailable)
	_, err = a.Projects.DeleteProject(ctx, req(&quartersv1.DeleteProjectRequest{Id: p.GetId()}))
	require.NoError(t, err)
	m4 := r.next(t)
	require.Equal(t, "project.deleted", m4.event.Type)
	require.Contains(t, string(m4.event.Data), p.GetId())
	failed := waitDelivery(t, wh, endpointID, func(d *quartersv1.WebhookDelivery) bool {
		return d.GetEventType() == "project.deleted" && d.GetAttempts() == 1
	})
	require.Equal(t, quartersv1.DeliveryStatus_DELIVERY_STATUS_PENDING, failed.GetStatus())
	require.Equal(t, int32(503), failed.GetResponseCode())
	require.Contains(t, failed.GetError(), "503")

	// A disabled endpoint gets nothing more.
	_, err = wh.UpdateEndpoint(ctx, req(&quartersv1.UpdateEndpointRequest{
		Endpoint: &quartersv1.WebhookEndpoint{Id: endpointID}, UpdateMask: apitest.Mask("enabled"),
	}))
	require.NoError(t, err)
	apitest.CreateProject(t, a, "unheard")
	var events int
	require.NoError(t, ownerRow(t, s, "select count(*) from webhook_events where tenant_id = $1", a.ID).Scan(&events))
	require.Equal(t, 3, events, "created, updated, deleted; nothing once nobody listens")
}

// TestEventsRollBack: an event emitted in a transaction that rolls back
// leaves neither the event, nor a delivery, nor a job.
func TestEventsRollBack(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := enterprise(t, s)
	_, err := webhooks(s, a).CreateEndpoint(ctx, req(&quartersv1.CreateEndpointRequest{
		Url: "https://hooks.example.com/", EventTypes: []string{"project.created"}, Enabled: true,
	}))
	require.NoError(t, err)
	tn, err := s.DB.LoadTenant(ctx, mustUUID(t, a.ID))
	require.NoError(t, err)
	tctx := tenancy.NewContext(ctx, tn)
	boom := errors.New("the change failed")
	var deliveries int
	err = s.DB.InTenantTx(tctx, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		if err := webhook.Emit(tctx, q, tx, s.Jobs, tn, webhook.ProjectCreated, &quartersv1.Project{Id: "x"}); err != nil {
			return err
		}
		// Inside the transaction the outbox holds it...
		if err := tx.QueryRow(tctx, "select count(*) from webhook_deliveries").Scan(&deliveries); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.Equal(t, 1, deliveries)
	// ...and after the rollback nothing is left.
	var events, jobs int
	require.NoError(t, ownerRow(t, s, "select (select count(*) from webhook_events), (select count(*) from webhook_deliveries), (select count(*) from river_job where kind = 'webhook_delivery')").Scan(&events, &deliveries, &jobs))
	require.Zero(t, events)
	require.Zero(t, deliveries)
	require.Zero(t, jobs)

	// A free tenant (no feature) writes no event at all, even with a
	// leftover endpoint from an earlier plan.
	s.SetPlan(t, a.ID, "free")
	_, err = a.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: "free"}))
	require.NoError(t, err)
	require.NoError(t, ownerRow(t, s, "select count(*) from webhook_events").Scan(&events))
	require.Zero(t, events)
	_, err = webhooks(s, a).ListEndpoints(ctx, req(&quartersv1.ListEndpointsRequest{}))
	apitest.RequireCode(t, err, connect.CodePermissionDenied)
}
