package webhooksvc_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/notify"
	"github.com/quarters-dev/quarters/internal/servertest"
	"github.com/quarters-dev/quarters/internal/webhook"
)

// failingSetup is an enterprise tenant with one endpoint at a receiver
// that answers 500.
func failingSetup(t *testing.T) (*servertest.Server, *servertest.Tenant, *receiver, string) {
	s := servertest.New(t)
	a := enterprise(t, s)
	r := newReceiver(t)
	r.status.Store(http.StatusInternalServerError)
	created, err := webhooks(s, a).CreateEndpoint(ctx, req(&quartersv1.CreateEndpointRequest{
		Url: r.srv.URL + "/hooks", EventTypes: []string{"project.created"}, Enabled: true,
	}))
	require.NoError(t, err)
	r.trust(created.Msg.GetSecret())
	return s, a, r, created.Msg.GetEndpoint().GetId()
}

// failOnce creates a project and waits for the server's worker to record
// the first, failed, attempt at its delivery; it returns the delivery.
func failOnce(t *testing.T, a *servertest.Tenant, r *receiver, wh func() *quartersv1.WebhookDelivery) *quartersv1.WebhookDelivery {
	t.Helper()
	apitest.CreateProject(t, a, "p-"+uuid.NewString()[:8])
	r.next(t)
	return wh()
}

// attempt works delivery id as its attempt n of MaxAttempts, as River
// would on a retry.
func attempt(t *testing.T, s *servertest.Server, tenantID, deliveryID string, n int) error {
	t.Helper()
	w := webhook.NewWorker(webhook.WorkerParams{DB: s.DB, Client: &webhook.ClientOpts{AllowLoopback: true}, Jobs: s.Jobs})
	return w.Work(ctx, &river.Job[webhook.DeliverArgs]{
		JobRow: &rivertype.JobRow{ID: 1, Attempt: n, MaxAttempts: webhook.MaxAttempts},
		Args:   webhook.DeliverArgs{TenantID: mustUUID(t, tenantID), DeliveryID: mustUUID(t, deliveryID)},
	})
}

// TestDisabledAfterSustainedFailure: a delivery that fails its last
// attempt disables its endpoint, with the reason on the endpoint and in
// the audit log; unless another delivery succeeded since it was made.
func TestDisabledAfterSustainedFailure(t *testing.T) {
	t.Parallel()
	s, a, r, endpointID := failingSetup(t)
	wh := webhooks(s, a)
	pendingWith := func(attempts int32, exclude ...string) func() *quartersv1.WebhookDelivery {
		return func() *quartersv1.WebhookDelivery {
			return waitDelivery(t, wh, endpointID, func(d *quartersv1.WebhookDelivery) bool {
				for _, e := range exclude {
					if d.GetId() == e {
						return false
					}
				}
				return d.GetStatus() == quartersv1.DeliveryStatus_DELIVERY_STATUS_PENDING && d.GetAttempts() == attempts
			})
		}
	}
	x := failOnce(t, a, r, pendingWith(1))
	require.Equal(t, int32(500), x.GetResponseCode())

	// Another delivery succeeds after x was made: x's final failure
	// leaves the endpoint enabled.
	r.status.Store(http.StatusOK)
	apitest.CreateProject(t, a, "ok")
	r.next(t)
	waitDelivery(t, wh, endpointID, func(d *quartersv1.WebhookDelivery) bool {
		return d.GetStatus() == quartersv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	})
	r.status.Store(http.StatusInternalServerError)
	require.Error(t, attempt(t, s, a.ID, x.GetId(), webhook.MaxAttempts))
	r.next(t)
	x = waitDelivery(t, wh, endpointID, func(d *quartersv1.WebhookDelivery) bool { return d.GetId() == x.GetId() })
	require.Equal(t, quartersv1.DeliveryStatus_DELIVERY_STATUS_FAILED, x.GetStatus())
	list, err := wh.ListEndpoints(ctx, req(&quartersv1.ListEndpointsRequest{}))
	require.NoError(t, err)
	require.True(t, list.Msg.GetEndpoints()[0].GetEnabled(), "a success since: not a dead receiver")

	// Nothing succeeds after z: its final failure disables the endpoint.
	z := failOnce(t, a, r, pendingWith(1, x.GetId()))
	require.Error(t, attempt(t, s, a.ID, z.GetId(), webhook.MaxAttempts))
	r.next(t)
	list, err = wh.ListEndpoints(ctx, req(&quartersv1.ListEndpointsRequest{}))
	require.NoError(t, err)
	e := list.Msg.GetEndpoints()[0]
	require.False(t, e.GetEnabled())
	require.Contains(t, e.GetDisabledReason(), "receiver answered 500")
	var audits int
	require.NoError(t, ownerRow(t, s, `select count(*) from audit_events
		where tenant_id = $1 and action = 'DisableWebhookEndpoint' and after->>'endpoint_id' = $2`, a.ID, endpointID).Scan(&audits))
	require.Equal(t, 1, audits)

	// Enabling it again clears the reason.
	up, err := wh.UpdateEndpoint(ctx, req(&quartersv1.UpdateEndpointRequest{
		Endpoint: &quartersv1.WebhookEndpoint{Id: endpointID, Enabled: true}, UpdateMask: apitest.Mask("enabled"),
	}))
	require.NoError(t, err)
	require.True(t, up.Msg.GetEndpoint().GetEnabled())
	require.Empty(t, up.Msg.GetEndpoint().GetDisabledReason())
}

// TestDisabledEndpointTellsManagers: the disable enqueues, in its own
// transaction, one mail to each owner and admin of the endpoint's tenant,
// naming the endpoint's URL and the last error: nobody else gets one (not
// a plain member, not another tenant's owner), and nobody gets two.
func TestDisabledEndpointTellsManagers(t *testing.T) {
	t.Parallel()
	s, a, r, endpointID := failingSetup(t)
	wh := webhooks(s, a)
	other := enterprise(t, s) // another tenant, with its own owner
	admin := fmt.Sprintf("admin-%s@disable.example", uuid.NewString()[:8])
	member := fmt.Sprintf("member-%s@disable.example", uuid.NewString()[:8])
	apitest.Join(t, s, a, admin, quartersv1.Role_ROLE_ADMIN)
	apitest.Join(t, s, a, member, quartersv1.Role_ROLE_MEMBER)

	d := failOnce(t, a, r, func() *quartersv1.WebhookDelivery {
		return waitDelivery(t, wh, endpointID, func(d *quartersv1.WebhookDelivery) bool { return d.GetAttempts() == 1 })
	})
	require.Error(t, attempt(t, s, a.ID, d.GetId(), webhook.MaxAttempts))
	r.next(t)
	// The last attempt again (a retried job): already disabled, no more
	// mail.
	require.NoError(t, attempt(t, s, a.ID, d.GetId(), webhook.MaxAttempts))

	url := r.srv.URL + "/hooks"
	for _, to := range []string{a.OwnerEmail, admin} {
		m, _ := s.Mailbox.Wait(t, to, notify.SubjectWebhookDisabled)
		require.Contains(t, m.Text, url, to)
		require.Contains(t, m.Text, "receiver answered 500", to)
		require.Contains(t, m.Text, "UpdateEndpoint", to)
	}
	// Every mail job settled: then count what went where.
	require.Eventually(t, func() bool {
		var pending int
		require.NoError(t, ownerRow(t, s, `select count(*) from river_job where kind = 'mail'
			and state not in ('completed', 'cancelled', 'discarded')`).Scan(&pending))
		return pending == 0
	}, 30*time.Second, 100*time.Millisecond)
	var jobs int
	require.NoError(t, ownerRow(t, s, `select count(*) from river_job where kind = 'mail'
		and args->>'template' = $1`, notify.TemplateWebhookDisabled).Scan(&jobs))
	require.Equal(t, 2, jobs, "one per owner or admin")
	notices := func(to string) int { return s.Mailbox.Count(to, notify.SubjectWebhookDisabled) }
	require.Equal(t, 1, notices(a.OwnerEmail))
	require.Equal(t, 1, notices(admin))
	require.Zero(t, notices(member), "members do not manage webhooks")
	require.Zero(t, notices(other.OwnerEmail), "another tenant's owner")
}

// TestSuspendedTenantDropped: a retry for a suspended tenant sends
// nothing, marks the delivery failed, and is not retried again.
func TestSuspendedTenantDropped(t *testing.T) {
	t.Parallel()
	s, a, r, endpointID := failingSetup(t)
	wh := webhooks(s, a)
	d := failOnce(t, a, r, func() *quartersv1.WebhookDelivery {
		return waitDelivery(t, wh, endpointID, func(d *quartersv1.WebhookDelivery) bool { return d.GetAttempts() == 1 })
	})
	s.Exec(t, a.ID, "update tenants set status = 'suspended' where id = $1", a.ID)
	require.NoError(t, attempt(t, s, a.ID, d.GetId(), 2), "dropped, not retried")
	var status, reason string
	require.NoError(t, ownerRow(t, s, "select status, error from webhook_deliveries where id = $1", d.GetId()).Scan(&status, &reason))
	require.Equal(t, webhook.StatusFailed, status)
	require.Equal(t, "tenant suspended", reason)
	select {
	case m := <-r.got:
		t.Fatalf("a suspended tenant's message was sent: %s", m.body)
	default:
	}
}

// TestWorkerRefusesLoopbackInProduction: the endpoint was registered on a
// development server (loopback allowed); a worker configured for
// production refuses it without connecting, and drops the delivery.
func TestWorkerRefusesLoopbackInProduction(t *testing.T) {
	t.Parallel()
	s, a, r, endpointID := failingSetup(t)
	wh := webhooks(s, a)
	d := failOnce(t, a, r, func() *quartersv1.WebhookDelivery {
		return waitDelivery(t, wh, endpointID, func(d *quartersv1.WebhookDelivery) bool { return d.GetAttempts() == 1 })
	})
	w := webhook.NewWorker(webhook.WorkerParams{DB: s.DB}) // production: no loopback
	require.NoError(t, w.Work(ctx, &river.Job[webhook.DeliverArgs]{
		JobRow: &rivertype.JobRow{ID: 1, Attempt: 2, MaxAttempts: webhook.MaxAttempts},
		Args:   webhook.DeliverArgs{TenantID: mustUUID(t, a.ID), DeliveryID: mustUUID(t, d.GetId())},
	}), "dropped, not retried")
	var status, reason string
	require.NoError(t, ownerRow(t, s, "select status, error from webhook_deliveries where id = $1", d.GetId()).Scan(&status, &reason))
	require.Equal(t, webhook.StatusFailed, status)
	require.Contains(t, reason, "url must be https")
	select {
	case m := <-r.got:
		t.Fatalf("sent to loopback: %s", m.body)
	default:
	}
}

// TestDeletedEndpointDropped: deleting an endpoint drops its pending
// deliveries; their jobs then send nothing and finish.
func TestDeletedEndpointDropped(t *testing.T) {
	t.Parallel()
	s, a, r, endpointID := failingSetup(t)
	wh := webhooks(s, a)
	d := failOnce(t, a, r, func() *quartersv1.WebhookDelivery {
		return waitDelivery(t, wh, endpointID, func(d *quartersv1.WebhookDelivery) bool { return d.GetAttempts() == 1 })
	})
	_, err := wh.DeleteEndpoint(ctx, req(&quartersv1.DeleteEndpointRequest{Id: endpointID}))
	require.NoError(t, err)
	require.NoError(t, attempt(t, s, a.ID, d.GetId(), 2))
	var n int
	require.NoError(t, ownerRow(t, s, "select count(*) from webhook_deliveries where tenant_id = $1", a.ID).Scan(&n))
	require.Zero(t, n)
	select {
	case m := <-r.got:
		t.Fatalf("sent for a deleted endpoint: %s", m.body)
	default:
	}
}
