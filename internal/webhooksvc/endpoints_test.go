package webhooksvc_test

import (
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// TestFeatureRequired: a plan without custom_webhooks is refused with
// FEATURE_NOT_AVAILABLE, from the contract's access rule.
func TestFeatureRequired(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	free := s.SignUp(t)
	_, err := webhooks(s, free).ListEndpoints(ctx, req(&quartersv1.ListEndpointsRequest{}))
	cerr := apitest.RequireCode(t, err, connect.CodePermissionDenied)
	require.Equal(t, "FEATURE_NOT_AVAILABLE", apitest.ErrorInfo(t, cerr).GetReason())
	s.SetPlan(t, free.ID, "pro") // analytics, not webhooks
	_, err = webhooks(s, free).CreateEndpoint(ctx, req(&quartersv1.CreateEndpointRequest{Url: "https://hooks.example.com/", EventTypes: []string{"project.created"}}))
	cerr = apitest.RequireCode(t, err, connect.CodePermissionDenied)
	require.Equal(t, "FEATURE_NOT_AVAILABLE", apitest.ErrorInfo(t, cerr).GetReason())
}

func TestEndpointLifecycle(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := enterprise(t, s)
	wh := webhooks(s, a)

	created, err := wh.CreateEndpoint(ctx, req(&quartersv1.CreateEndpointRequest{
		Url: "https://hooks.example.com/in", EventTypes: []string{"project.created", "project.deleted"}, Enabled: true,
	}))
	require.NoError(t, err)
	e, secret := created.Msg.GetEndpoint(), created.Msg.GetSecret()
	require.NoError(t, uuid.Validate(e.GetId()))
	require.Equal(t, "https://hooks.example.com/in", e.GetUrl())
	require.Equal(t, []string{"project.created", "project.deleted"}, e.GetEventTypes())
	require.True(t, e.GetEnabled())
	require.Regexp(t, `^whsec_[A-Za-z0-9+/]{43}=$`, secret)

	// The secret is stored as given (it signs), and never listed.
	var stored string
	require.NoError(t, ownerRow(t, s, "select secret from webhook_endpoints where id = $1", e.GetId()).Scan(&stored))
	require.Equal(t, secret, stored)
	list, err := wh.ListEndpoints(ctx, req(&quartersv1.ListEndpointsRequest{}))
	require.NoError(t, err)
	require.Len(t, list.Msg.GetEndpoints(), 1)
	require.Equal(t, e.GetId(), list.Msg.GetEndpoints()[0].GetId())
	require.NotContains(t, list.Msg.String(), secret)

	// Only masked fields change.
	up, err := wh.UpdateEndpoint(ctx, req(&quartersv1.UpdateEndpointRequest{
		Endpoint:   &quartersv1.WebhookEndpoint{Id: e.GetId(), Enabled: false, Url: "https://ignored.example.com/"},
		UpdateMask: apitest.Mask("enabled"),
	}))
	require.NoError(t, err)
	require.False(t, up.Msg.GetEndpoint().GetEnabled())
	require.Equal(t, "https://hooks.example.com/in", up.Msg.GetEndpoint().GetUrl())
	up, err = wh.UpdateEndpoint(ctx, req(&quartersv1.UpdateEndpointRequest{
		Endpoint:   &quartersv1.WebhookEndpoint{Id: e.GetId(), Url: "https://other.example.com/x", EventTypes: []string{"project.updated"}},
		UpdateMask: apitest.Mask("url", "event_types"),
	}))
	require.NoError(t, err)
	require.Equal(t, "https://other.example.com/x", up.Msg.GetEndpoint().GetUrl())
	require.Equal(t, []string{"project.updated"}, up.Msg.GetEndpoint().GetEventTypes())
	require.False(t, up.Msg.GetEndpoint().GetEnabled())

	// Rotation: a new secret; the old one kept for a day as the previous.
	rot, err := wh.RotateSecret(ctx, req(&quartersv1.RotateSecretRequest{Id: e.GetId()}))
	require.NoError(t, err)
	require.Regexp(t, `^whsec_`, rot.Msg.GetSecret())
	require.NotEqual(t, secret, rot.Msg.GetSecret())
	require.False(t, rot.Msg.GetEndpoint().GetSecretRotateTime().AsTime().Before(e.GetSecretRotateTime().AsTime()))
	var cur, prev string
	var prevUntil time.Time
	require.NoError(t, ownerRow(t, s, "select secret, previous_secret, previous_secret_expire_time from webhook_endpoints where id = $1", e.GetId()).Scan(&cur, &prev, &prevUntil))
	require.Equal(t, rot.Msg.GetSecret(), cur)
	require.Equal(t, secret, prev)
	require.WithinDuration(t, time.Now().Add(24*time.Hour), prevUntil, time.Hour)

	deliveries, err := wh.ListDeliveries(ctx, req(&quartersv1.ListDeliveriesRequest{EndpointId: e.GetId()}))
	require.NoError(t, err)
	require.Empty(t, deliveries.Msg.GetDeliveries())

	_, err = wh.DeleteEndpoint(ctx, req(&quartersv1.DeleteEndpointRequest{Id: e.GetId()}))
	require.NoError(t, err)
	_, err = wh.DeleteEndpoint(ctx, req(&quartersv1.DeleteEndpointRequest{Id: e.GetId()}))
	cerr := apitest.RequireCode(t, err, connect.CodeNotFound)
	require.Equal(t, "webhook endpoint not found", cerr.Message())
	list, err = wh.ListEndpoints(ctx, req(&quartersv1.ListEndpointsRequest{}))
	require.NoError(t, err)
	require.Empty(t, list.Msg.GetEndpoints())
}

func TestEndpointValidation(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	wh := webhooks(s, enterprise(t, s))
	for _, c := range []struct {
		name string
		msg  *quartersv1.CreateEndpointRequest
		want string
	}{
		{"plain http elsewhere than loopback", &quartersv1.CreateEndpointRequest{Url: "http://hooks.example.com/", EventTypes: []string{"project.created"}}, "https"},
		{"private address", &quartersv1.CreateEndpointRequest{Url: "https://10.0.0.7/", EventTypes: []string{"project.created"}}, "not a public address"},
		{"metadata address", &quartersv1.CreateEndpointRequest{Url: "https://169.254.169.254/", EventTypes: []string{"project.created"}}, "not a public address"},
		{"not a URL", &quartersv1.CreateEndpointRequest{Url: "hooks", EventTypes: []string{"project.created"}}, "url"},
		{"ftp", &quartersv1.CreateEndpointRequest{Url: "ftp://hooks.example.com/", EventTypes: []string{"project.created"}}, "url must be https"},
		{"unknown event", &quartersv1.CreateEndpointRequest{Url: "https://hooks.example.com/", EventTypes: []string{"project.exploded"}}, "event_types"},
		{"no events", &quartersv1.CreateEndpointRequest{Url: "https://hooks.example.com/"}, "event_types"},
	} {
		_, err := wh.CreateEndpoint(ctx, req(c.msg))
		cerr := apitest.RequireCode(t, err, connect.CodeInvalidArgument)
		require.Contains(t, cerr.Message(), c.want, c.name)
	}
	_, err := wh.UpdateEndpoint(ctx, req(&quartersv1.UpdateEndpointRequest{
		Endpoint: &quartersv1.WebhookEndpoint{Id: uuid.NewString(), Url: "https://192.168.0.1/"}, UpdateMask: apitest.Mask("url"),
	}))
	cerr := apitest.RequireCode(t, err, connect.CodeInvalidArgument)
	require.Contains(t, cerr.Message(), "not a public address")
}

// TestEndpointIsolation: another tenant's endpoint and deliveries answer
// every call exactly as ids that never existed do.
func TestEndpointIsolation(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a, b := enterprise(t, s), enterprise(t, s)
	created, err := webhooks(s, a).CreateEndpoint(ctx, req(&quartersv1.CreateEndpointRequest{
		Url: "https://hooks.example.com/a", EventTypes: []string{"project.created"}, Enabled: true,
	}))
	require.NoError(t, err)
	id := created.Msg.GetEndpoint().GetId()
	var deliveryID string
	apitest.CreateProject(t, a, "one") // a pending delivery to a's endpoint
	require.NoError(t, ownerRow(t, s, "select id::text from webhook_deliveries where endpoint_id = $1", id).Scan(&deliveryID))

	wb := webhooks(s, b)
	list, err := wb.ListEndpoints(ctx, req(&quartersv1.ListEndpointsRequest{}))
	require.NoError(t, err)
	require.Empty(t, list.Msg.GetEndpoints())

	calls := map[string]func(id string) error{
		"UpdateEndpoint": func(id string) error {
			_, err := wb.UpdateEndpoint(ctx, req(&quartersv1.UpdateEndpointRequest{
				Endpoint: &quartersv1.WebhookEndpoint{Id: id, Url: "https://evil.example.com/"}, UpdateMask: apitest.Mask("url"),
			}))
			return err
		},
		"RotateSecret": func(id string) error {
			_, err := wb.RotateSecret(ctx, req(&quartersv1.RotateSecretRequest{Id: id}))
			return err
		},
		"ListDeliveries": func(id string) error {
			_, err := wb.ListDeliveries(ctx, req(&quartersv1.ListDeliveriesRequest{EndpointId: id}))
			return err
		},
		"DeleteEndpoint": func(id string) error {
			_, err := wb.DeleteEndpoint(ctx, req(&quartersv1.DeleteEndpointRequest{Id: id}))
			return err
		},
	}
	for name, call := range calls {
		theirs := apitest.RequireCode(t, call(id), connect.CodeNotFound)
		madeUp := apitest.RequireCode(t, call(uuid.NewString()), connect.CodeNotFound)
		require.Equal(t, madeUp.Message(), theirs.Message(), name)
		require.Equal(t, "webhook endpoint not found", theirs.Message(), name)
	}
	_, err = wb.Redeliver(ctx, req(&quartersv1.RedeliverRequest{DeliveryId: deliveryID}))
	theirs := apitest.RequireCode(t, err, connect.CodeNotFound)
	_, err = wb.Redeliver(ctx, req(&quartersv1.RedeliverRequest{DeliveryId: uuid.NewString()}))
	madeUp := apitest.RequireCode(t, err, connect.CodeNotFound)
	require.Equal(t, madeUp.Message(), theirs.Message())
	require.Equal(t, "webhook delivery not found", theirs.Message())

	// a's endpoint is untouched, and b's project goes to b's endpoint
	// only.
	bs, err := wb.CreateEndpoint(ctx, req(&quartersv1.CreateEndpointRequest{
		Url: "https://hooks.example.com/b", EventTypes: []string{"project.created"}, Enabled: true,
	}))
	require.NoError(t, err)
	apitest.CreateProject(t, b, "b's")
	got, err := webhooks(s, a).ListEndpoints(ctx, req(&quartersv1.ListEndpointsRequest{}))
	require.NoError(t, err)
	require.Len(t, got.Msg.GetEndpoints(), 1)
	require.Equal(t, "https://hooks.example.com/a", got.Msg.GetEndpoints()[0].GetUrl())
	var n int
	require.NoError(t, ownerRow(t, s, "select count(*) from webhook_deliveries where endpoint_id = $1", id).Scan(&n))
	require.Equal(t, 1, n)
	require.NoError(t, ownerRow(t, s, "select count(*) from webhook_deliveries where endpoint_id = $1 and tenant_id = $2", bs.Msg.GetEndpoint().GetId(), b.ID).Scan(&n))
	require.Equal(t, 1, n, "b's event went to b's endpoint")
}
