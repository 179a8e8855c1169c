package access_test

import (
	"context"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/access"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/router"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// TestEveryProcedureHasARule walks every method of every service in the
// quarters.v1 package (all of them, not just the ones the router mounts)
// and fails if one lacks an access rule. It also checks the router serves
// every service, so no service escapes the walk.
func TestEveryProcedureHasARule(t *testing.T) {
	var services []protoreflect.ServiceDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage("quarters.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			services = append(services, fd.Services().Get(i))
		}
		return true
	})
	require.GreaterOrEqual(t, len(services), 3)
	methods := 0
	for _, svc := range services {
		for i := range svc.Methods().Len() {
			m := svc.Methods().Get(i)
			_, ok := access.RuleOf(m)
			require.True(t, ok, "%s has no (quarters.v1.access) rule: declare public or min_role", m.FullName())
			methods++
		}
	}
	require.GreaterOrEqual(t, methods, 12)

	var served []string
	for _, s := range router.Services() {
		served = append(served, string(s.FullName()))
	}
	for _, s := range services {
		require.Contains(t, served, string(s.FullName()), "service not mounted by the router")
	}
}

func TestRulesFor(t *testing.T) {
	rules, err := access.RulesFor(router.Services()...)
	require.NoError(t, err)
	require.True(t, rules.IsPublic("/quarters.v1.TenantService/CreateTenant"))
	require.False(t, rules.IsPublic("/quarters.v1.TenantService/GetTenant"))
	require.False(t, rules.IsPublic("/quarters.v1.Unknown/Method"))
	require.Equal(t, quartersv1.Role_ROLE_MEMBER, rules["/quarters.v1.ProjectService/DeleteProject"].GetMinRole())
}

// TestInterceptor: roles below the rule are PERMISSION_DENIED, no
// credential is UNAUTHENTICATED, and a procedure without a rule is refused.
func TestInterceptor(t *testing.T) {
	rules := access.Rules{
		"/x.v1.S/Public": {Public: true},
		"/x.v1.S/Admin":  {MinRole: quartersv1.Role_ROLE_ADMIN},
	}
	call := func(procedure string, p *tenancy.Principal) error {
		ctx := context.Background()
		if p != nil {
			ctx = auth.NewContext(ctx, p)
		}
		next := connect.UnaryFunc(func(context.Context, connect.AnyRequest) (connect.AnyResponse, error) { return nil, nil })
		_, err := access.NewInterceptor(rules, "https://example.test/up").WrapUnary(next)(ctx, fakeRequest{procedure: procedure})
		return err
	}
	member := &tenancy.Principal{Role: tenancy.RoleMember}
	admin := &tenancy.Principal{Role: tenancy.RoleAdmin}
	owner := &tenancy.Principal{Role: tenancy.RoleOwner}

	require.NoError(t, call("/x.v1.S/Public", nil))
	require.Equal(t, connect.CodeUnauthenticated, connect.CodeOf(call("/x.v1.S/Admin", nil)))
	require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(call("/x.v1.S/Admin", member)))
	require.NoError(t, call("/x.v1.S/Admin", admin))
	require.NoError(t, call("/x.v1.S/Admin", owner))
	require.Equal(t, connect.CodeInternal, connect.CodeOf(call("/x.v1.S/NoRule", owner)))
}

type fakeRequest struct {
	connect.AnyRequest
	procedure string
}

func (r fakeRequest) Spec() connect.Spec { return connect.Spec{Procedure: r.procedure} }

// TestFeatureGate: an RPC that names a feature needs it among the tenant's
// effective features; the refusal says which feature, plan and upgrade URL.
func TestFeatureGate(t *testing.T) {
	rules := access.Rules{"/x.v1.S/Report": {MinRole: quartersv1.Role_ROLE_MEMBER, Feature: "analytics"}}
	call := func(features map[string]bool) error {
		ctx := auth.NewContext(context.Background(), &tenancy.Principal{Role: tenancy.RoleAdmin})
		ctx = tenancy.NewContext(ctx, tenancy.Tenant{ID: uuid.New(), Plan: "free", Features: features})
		next := connect.UnaryFunc(func(context.Context, connect.AnyRequest) (connect.AnyResponse, error) { return nil, nil })
		_, err := access.NewInterceptor(rules, "https://example.test/up").WrapUnary(next)(ctx, fakeRequest{procedure: "/x.v1.S/Report"})
		return err
	}
	require.NoError(t, call(map[string]bool{"analytics": true}))
	err := call(nil)
	require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err))
	var cerr *connect.Error
	require.ErrorAs(t, err, &cerr)
	require.Len(t, cerr.Details(), 1)
	v, derr := cerr.Details()[0].Value()
	require.NoError(t, derr)
	info := v.(*errdetails.ErrorInfo)
	require.Equal(t, "FEATURE_NOT_AVAILABLE", info.GetReason())
	require.Equal(t, map[string]string{"feature": "analytics", "plan": "free", "upgrade_url": "https://example.test/up"}, info.GetMetadata())
}
