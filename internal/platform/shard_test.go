package platform_test

import (
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// TestPlatformShardOperations: IsolateTenant and MoveTenant take the
// platform key only, check the node's form before anything runs, and on
// plain PostgreSQL are FAILED_PRECONDITION saying Citus is needed. (On
// Citus, db's TestCitusIsolateAndMoveOnline runs them under load.)
func TestPlatformShardOperations(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	tenantKey := quartersv1connect.NewPlatformServiceClient(s.HTTP, s.URL, connect.WithInterceptors(servertest.Bearer(a.Key)))
	_, err := tenantKey.IsolateTenant(ctx, req(&quartersv1.IsolateTenantRequest{TenantId: a.ID}))
	apitest.RequireCode(t, err, connect.CodePermissionDenied)
	_, err = tenantKey.MoveTenant(ctx, req(&quartersv1.MoveTenantRequest{TenantId: a.ID, Node: "127.0.0.1:5432"}))
	apitest.RequireCode(t, err, connect.CodePermissionDenied)

	p := s.Platform(t)
	_, err = p.MoveTenant(ctx, req(&quartersv1.MoveTenantRequest{TenantId: a.ID, Node: "no-port"}))
	apitest.RequireCode(t, err, connect.CodeInvalidArgument)
	require.ErrorContains(t, err, "want host:port")
	_, err = p.IsolateTenant(ctx, req(&quartersv1.IsolateTenantRequest{TenantId: "not-a-uuid"}))
	apitest.RequireCode(t, err, connect.CodeInvalidArgument)

	_, err = p.IsolateTenant(ctx, req(&quartersv1.IsolateTenantRequest{TenantId: a.ID}))
	apitest.RequireCode(t, err, connect.CodeFailedPrecondition)
	require.ErrorContains(t, err, "need Citus")
	_, err = p.MoveTenant(ctx, req(&quartersv1.MoveTenantRequest{TenantId: uuid.NewString(), Node: "127.0.0.1:5432"}))
	apitest.RequireCode(t, err, connect.CodeFailedPrecondition)
}
