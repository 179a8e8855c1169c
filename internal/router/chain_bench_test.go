package router_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/ratelimit"
	"github.com/quarters-dev/quarters/internal/router"
	"github.com/quarters-dev/quarters/internal/servertest"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// BenchmarkInterceptorChain runs the whole production interceptor chain
// (observe, tenant, rate limit, usage quota, access, validation) around a
// handler that does nothing, for a tenant whose record is cached: the
// per-call cost Quarters adds before a handler's own database work.
func BenchmarkInterceptorChain(b *testing.B) {
	s := servertest.New(b)
	a := s.SignUp(b)
	s.SetPlan(b, a.ID, "enterprise") // a monthly quota that b.N cannot reach
	s.Unthrottle(b, a.ID)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	chain := router.Interceptors(router.Params{
		DB: s.DB, Logger: logger, Tenants: s.Tenants, Limiter: ratelimit.NewLocal(),
		Usage: s.Usage, KeyUse: s.KeyUse, Cost: s.Cost, Settings: router.Settings{UpgradeURL: router.DefaultUpgradeURL},
	})
	var call connect.UnaryFunc = func(context.Context, connect.AnyRequest) (connect.AnyResponse, error) {
		return connect.NewResponse(&quartersv1.GetProjectResponse{}), nil
	}
	for i := len(chain) - 1; i >= 0; i-- {
		call = chain[i].WrapUnary(call)
	}
	ctx := auth.NewContext(context.Background(), &tenancy.Principal{
		TenantID: uuid.MustParse(a.ID), TenantSlug: a.Slug, TenantActive: true, Role: tenancy.RoleAdmin,
	})
	req := &chainRequest{Request: connect.NewRequest(&quartersv1.GetProjectRequest{Id: uuid.NewString()})}
	_, err := call(ctx, req) // warms the tenant cache and the month-to-date total
	require.NoError(b, err)

	b.ReportAllocs()
	for b.Loop() {
		if _, err := call(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// chainRequest gives a bare request the procedure a real call would have.
type chainRequest struct {
	*connect.Request[quartersv1.GetProjectRequest]
}

func (r *chainRequest) Spec() connect.Spec {
	return connect.Spec{Procedure: quartersv1connectGetProject, StreamType: connect.StreamTypeUnary}
}

const quartersv1connectGetProject = "/quarters.v1.ProjectService/GetProject"
