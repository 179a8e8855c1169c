package webhooksvc_test

import (
	"context"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db/dbtest"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// The API tests here run real servers (servertest) on databases of the
// package's own test cluster.
func TestMain(m *testing.M) { dbtest.Main(m) }

var ctx = context.Background()

func req[T any](m *T) *connect.Request[T] { return connect.NewRequest(m) }

// webhooks is a WebhookService client with tn's credential.
func webhooks(s *servertest.Server, tn *servertest.Tenant) quartersv1connect.WebhookServiceClient {
	return quartersv1connect.NewWebhookServiceClient(s.HTTP, s.URL, connect.WithInterceptors(servertest.Bearer(tn.Key)))
}

// enterprise signs up a tenant on the plan with custom_webhooks.
func enterprise(t *testing.T, s *servertest.Server) *servertest.Tenant {
	t.Helper()
	tn := s.SignUp(t)
	s.SetPlan(t, tn.ID, "enterprise")
	return tn
}

func mustUUID(t *testing.T, s string) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(s)
	require.NoError(t, err)
	return id
}
