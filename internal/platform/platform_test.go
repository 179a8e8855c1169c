package platform_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/page"
	"github.com/quarters-dev/quarters/internal/redistest"
	"github.com/quarters-dev/quarters/internal/servertest"
	"github.com/quarters-dev/quarters/internal/tenancy"
	"github.com/quarters-dev/quarters/internal/tenant"
)

// TestPlatformCredential: PlatformService takes the platform key and
// nothing else, and the platform key opens no tenant RPC.
func TestPlatformCredential(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	platform := func(key string) quartersv1connect.PlatformServiceClient {
		return quartersv1connect.NewPlatformServiceClient(s.HTTP, s.URL, connect.WithInterceptors(servertest.Bearer(key)))
	}
	list := func(c quartersv1connect.PlatformServiceClient) error {
		_, err := c.ListTenants(ctx, req(&quartersv1.ListTenantsRequest{}))
		return err
	}
	suspend := func(c quartersv1connect.PlatformServiceClient) error {
		_, err := c.SuspendTenant(ctx, req(&quartersv1.SuspendTenantRequest{TenantId: a.ID}))
		return err
	}

	for _, c := range []struct {
		name string
		key  string
		code connect.Code
	}{
		{"no credential", "", connect.CodeUnauthenticated},
		{"wrong platform key", "not-the-platform-key-0123456789abcdef", connect.CodeUnauthenticated},
		{"tenant api key", a.Key, connect.CodePermissionDenied},
	} {
		apitest.RequireCode(t, list(platform(c.key)), c.code)
		apitest.RequireCode(t, suspend(platform(c.key)), c.code)
	}

	// The platform key on a tenant RPC: refused, it acts for no tenant.
	p := s.As(a.ID, a.Slug, s.PlatformKey)
	_, err := p.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	apitest.RequireCode(t, err, connect.CodePermissionDenied)
	_, err = p.Plans.GetPlan(ctx, req(&quartersv1.GetPlanRequest{}))
	apitest.RequireCode(t, err, connect.CodePermissionDenied)

	// None of the refused calls changed or audited anything.
	require.NoError(t, list(s.Platform(t)))
	require.Empty(t, auditEvents(t, s.Platform(t), a.ID))
	_, err = a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)

	// Another server's platform key is just a bad credential here.
	other := servertest.NewWith(t, &servertest.Opts{PlatformKey: "another-platform-key-fedcba9876543210"})
	require.NoError(t, list(other.Platform(t)))
	apitest.RequireCode(t, list(quartersv1connect.NewPlatformServiceClient(other.HTTP, other.URL,
		connect.WithInterceptors(servertest.Bearer(servertest.DefaultPlatformKey)))), connect.CodeUnauthenticated)
}

// TestPlatformListTenants: newest first, paged, filtered by status and plan;
// a page token only continues the filters it was issued for.
func TestPlatformListTenants(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	p := s.Platform(t)
	a, b, c := s.SignUp(t), s.SignUp(t), s.SignUp(t)

	list := func(r *quartersv1.ListTenantsRequest) ([]string, string) {
		t.Helper()
		resp, err := p.ListTenants(ctx, req(r))
		require.NoError(t, err)
		var ids []string
		for _, tn := range resp.Msg.GetTenants() {
			ids = append(ids, tn.GetId())
		}
		return ids, resp.Msg.GetNextPageToken()
	}

	all, next := list(&quartersv1.ListTenantsRequest{})
	require.Equal(t, []string{c.ID, b.ID, a.ID}, all)
	require.Empty(t, next)

	page1, next := list(&quartersv1.ListTenantsRequest{PageSize: 2})
	require.Equal(t, []string{c.ID, b.ID}, page1)
	require.NotEmpty(t, next)
	page2, next := list(&quartersv1.ListTenantsRequest{PageSize: 2, PageToken: next})
	require.Equal(t, []string{a.ID}, page2)
	require.Empty(t, next)

	// The listed record is the tenant's.
	resp, err := p.ListTenants(ctx, req(&quartersv1.ListTenantsRequest{PageSize: 1}))
	require.NoError(t, err)
	got := resp.Msg.GetTenants()[0]
	require.Equal(t, c.Slug, got.GetSlug())
	require.Equal(t, "free", got.GetPlan())
	require.Equal(t, quartersv1.TenantStatus_TENANT_STATUS_ACTIVE, got.GetStatus())
	require.Equal(t, "owner@"+c.Slug+".example", got.GetOwnerEmail())

	_, err = p.SuspendTenant(ctx, req(&quartersv1.SuspendTenantRequest{TenantId: b.ID}))
	require.NoError(t, err)
	_, err = p.SetPlan(ctx, req(&quartersv1.SetPlanRequest{TenantId: c.ID, Plan: "pro"}))
	require.NoError(t, err)
	_, err = p.SetPlan(ctx, req(&quartersv1.SetPlanRequest{TenantId: b.ID, Plan: "pro"}))
	require.NoError(t, err)

	suspended := quartersv1.TenantStatus_TENANT_STATUS_SUSPENDED
	active := quartersv1.TenantStatus_TENANT_STATUS_ACTIVE
	ids, _ := list(&quartersv1.ListTenantsRequest{Status: suspended})
	require.Equal(t, []string{b.ID}, ids)
	ids, _ = list(&quartersv1.ListTenantsRequest{Status: active})
	require.Equal(t, []string{c.ID, a.ID}, ids)
	ids, _ = list(&quartersv1.ListTenantsRequest{Plan: "pro"})
	require.Equal(t, []string{c.ID, b.ID}, ids)
	ids, _ = list(&quartersv1.ListTenantsRequest{Plan: "pro", Status: active})
	require.Equal(t, []string{c.ID}, ids)
	ids, _ = list(&quartersv1.ListTenantsRequest{Plan: "enterprise"})
	require.Empty(t, ids)

	// Paging within a filter; the token refuses other filters.
	ids, next = list(&quartersv1.ListTenantsRequest{Plan: "pro", PageSize: 1})
	require.Equal(t, []string{c.ID}, ids)
	ids, last := list(&quartersv1.ListTenantsRequest{Plan: "pro", PageSize: 1, PageToken: next})
	require.Equal(t, []string{b.ID}, ids)
	require.Empty(t, last)
	_, err = p.ListTenants(ctx, req(&quartersv1.ListTenantsRequest{Plan: "free", PageSize: 1, PageToken: next}))
	apitest.RequireCode(t, err, connect.CodeInvalidArgument)

	for _, bad := range []*quartersv1.ListTenantsRequest{
		{PageSize: 101},
		{Plan: "Pro!"},
		{Status: quartersv1.TenantStatus(9)},
		{PageToken: "garbage"},
	} {
		_, err := p.ListTenants(ctx, req(bad))
		apitest.RequireCode(t, err, connect.CodeInvalidArgument)
	}
}

// TestPlatformSetPlan: the tenant sees its new plan on its very next call
// (the cached record was invalidated, not left to expire).
func TestPlatformSetPlan(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	p := s.Platform(t)
	a := s.SignUp(t)
	b := s.SignUp(t)
	require.Equal(t, "free", getPlan(t, a).GetPlan()) // cached as free now

	resp, err := p.SetPlan(ctx, req(&quartersv1.SetPlanRequest{TenantId: a.ID, Plan: "pro"}))
	require.NoError(t, err)
	d := resp.Msg.GetDetails()
	require.Equal(t, a.ID, d.GetTenant().GetId())
	require.Equal(t, "pro", d.GetTenant().GetPlan())
	require.Equal(t, int64(1000), d.GetLimits().GetRequestsPerMinute())
	require.Equal(t, int64(100), d.GetLimits().GetMaxProjects())
	require.Equal(t, int64(5000), d.GetLimits().GetStatementTimeoutMs())
	require.Equal(t, []string{"analytics"}, d.GetFeatures())
	ev := resp.Msg.GetAuditEvent()
	require.Equal(t, "SetPlan", ev.GetAction())
	require.Equal(t, "platform", ev.GetActor())
	require.Equal(t, a.ID, ev.GetTenantId())
	require.Equal(t, map[string]any{"plan": "free"}, ev.GetBefore().AsMap())
	require.Equal(t, map[string]any{"plan": "pro"}, ev.GetAfter().AsMap())
	require.WithinDuration(t, time.Now(), ev.GetCreateTime().AsTime(), time.Minute)

	plan := getPlan(t, a)
	require.Equal(t, "pro", plan.GetPlan())
	require.Contains(t, plan.GetFeatures(), "analytics")
	require.Equal(t, int64(100), plan.GetLimits().GetMaxProjects())
	require.Equal(t, "free", getPlan(t, b).GetPlan(), "another tenant's plan changed")

	// Unknown plan, unknown tenant: NOT_FOUND, and nothing changes.
	_, err = p.SetPlan(ctx, req(&quartersv1.SetPlanRequest{TenantId: a.ID, Plan: "platinum"}))
	cerr := apitest.RequireCode(t, err, connect.CodeNotFound)
	require.Equal(t, "plan not found", cerr.Message())
	_, err = p.SetPlan(ctx, req(&quartersv1.SetPlanRequest{TenantId: uuid.NewString(), Plan: "pro"}))
	cerr = apitest.RequireCode(t, err, connect.CodeNotFound)
	require.Equal(t, "tenant not found", cerr.Message())
	_, err = p.GetTenant(ctx, req(&quartersv1.PlatformServiceGetTenantRequest{TenantId: uuid.NewString()}))
	cerr = apitest.RequireCode(t, err, connect.CodeNotFound)
	require.Equal(t, "tenant not found", cerr.Message())
	require.Equal(t, "pro", getPlan(t, a).GetPlan())
	require.Len(t, auditEvents(t, p, a.ID), 1, "a failed call left an audit record")

	for _, bad := range []*quartersv1.SetPlanRequest{
		{TenantId: a.ID, Plan: "Pro"},
		{TenantId: a.ID, Plan: ""},
		{TenantId: "not-a-uuid", Plan: "pro"},
	} {
		_, err := p.SetPlan(ctx, req(bad))
		apitest.RequireCode(t, err, connect.CodeInvalidArgument)
	}

	// GetTenant shows what SetPlan returned.
	got, err := p.GetTenant(ctx, req(&quartersv1.PlatformServiceGetTenantRequest{TenantId: a.ID}))
	require.NoError(t, err)
	require.Equal(t, "pro", got.Msg.GetDetails().GetTenant().GetPlan())
	require.Equal(t, a.Slug, got.Msg.GetDetails().GetTenant().GetSlug())
	require.Equal(t, []string{"analytics"}, got.Msg.GetDetails().GetFeatures())
}

// TestPlatformSetOverrides: masked fields are set or, left unset, cleared;
// unmasked fields keep their value; the tenant sees each change at once.
func TestPlatformSetOverrides(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	p := s.Platform(t)
	a := s.SignUp(t)
	require.Empty(t, getPlan(t, a).GetFeatures())

	set := func(o *quartersv1.TenantOverrides, paths ...string) *quartersv1.SetOverridesResponse {
		t.Helper()
		resp, err := p.SetOverrides(ctx, req(&quartersv1.SetOverridesRequest{TenantId: a.ID, Overrides: o, UpdateMask: apitest.Mask(paths...)}))
		require.NoError(t, err)
		return resp.Msg
	}
	none := map[string]any{
		"requests_per_minute": nil, "burst": nil, "max_projects": nil, "max_members": nil,
		"max_api_calls_per_month": nil, "statement_timeout_ms": nil, "features": map[string]any{},
	}
	with := func(kv map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range none {
			m[k] = v
		}
		for k, v := range kv {
			m[k] = v
		}
		return m
	}

	r := set(&quartersv1.TenantOverrides{
		MaxProjects:       ptr[int64](7),
		RequestsPerMinute: ptr[int64](500),
		Features:          map[string]bool{"analytics": true, "beta_search": true},
	}, "max_projects", "requests_per_minute", "features")
	require.Equal(t, int64(7), r.GetDetails().GetLimits().GetMaxProjects())
	require.Equal(t, int64(500), r.GetDetails().GetLimits().GetRequestsPerMinute())
	require.Equal(t, int64(20), r.GetDetails().GetLimits().GetBurst(), "unset override is the plan's")
	require.Equal(t, []string{"analytics", "beta_search"}, r.GetDetails().GetFeatures())
	require.Equal(t, int64(7), r.GetDetails().GetOverrides().GetMaxProjects())
	require.Nil(t, r.GetDetails().GetOverrides().Burst)
	require.Equal(t, "SetOverrides", r.GetAuditEvent().GetAction())
	require.Equal(t, none, r.GetAuditEvent().GetBefore().AsMap())
	after1 := with(map[string]any{
		"max_projects": float64(7), "requests_per_minute": float64(500),
		"features": map[string]any{"analytics": true, "beta_search": true},
	})
	require.Equal(t, after1, r.GetAuditEvent().GetAfter().AsMap())

	plan := getPlan(t, a)
	require.Equal(t, int64(7), plan.GetLimits().GetMaxProjects())
	require.Equal(t, int64(500), plan.GetLimits().GetRequestsPerMinute())
	require.Equal(t, []string{"analytics", "beta_search"}, plan.GetFeatures())

	// Clear max_projects (masked, unset) and set max_members; the rest stays.
	r = set(&quartersv1.TenantOverrides{MaxMembers: ptr[int64](9)}, "max_projects", "max_members")
	require.Equal(t, after1, r.GetAuditEvent().GetBefore().AsMap())
	after2 := with(map[string]any{
		"max_members": float64(9), "requests_per_minute": float64(500),
		"features": map[string]any{"analytics": true, "beta_search": true},
	})
	require.Equal(t, after2, r.GetAuditEvent().GetAfter().AsMap())
	plan = getPlan(t, a)
	require.Equal(t, int64(5), plan.GetLimits().GetMaxProjects(), "cleared override: the free plan's 5")
	require.Equal(t, int64(9), plan.GetLimits().GetMaxMembers())
	require.Equal(t, int64(500), plan.GetLimits().GetRequestsPerMinute())

	// A feature override can withdraw a plan feature.
	_, err := p.SetPlan(ctx, req(&quartersv1.SetPlanRequest{TenantId: a.ID, Plan: "enterprise"}))
	require.NoError(t, err)
	set(&quartersv1.TenantOverrides{Features: map[string]bool{"custom_webhooks": false}}, "features")
	require.Equal(t, []string{"analytics"}, getPlan(t, a).GetFeatures())

	// Clear everything: a nil overrides message with every path masked.
	r = set(nil, "requests_per_minute", "burst", "max_projects", "max_members",
		"max_api_calls_per_month", "statement_timeout_ms", "features")
	require.Equal(t, none, r.GetAuditEvent().GetAfter().AsMap())
	plan = getPlan(t, a)
	require.Equal(t, int64(10000), plan.GetLimits().GetRequestsPerMinute())
	require.Equal(t, int64(1000), plan.GetLimits().GetMaxMembers())
	require.Equal(t, []string{"analytics", "custom_webhooks"}, plan.GetFeatures())

	for name, bad := range map[string]*quartersv1.SetOverridesRequest{
		"empty mask":     {TenantId: a.ID, UpdateMask: apitest.Mask()},
		"no mask":        {TenantId: a.ID},
		"unknown path":   {TenantId: a.ID, UpdateMask: apitest.Mask("plan")},
		"negative":       {TenantId: a.ID, Overrides: &quartersv1.TenantOverrides{MaxProjects: ptr[int64](-1)}, UpdateMask: apitest.Mask("max_projects")},
		"too large":      {TenantId: a.ID, Overrides: &quartersv1.TenantOverrides{RequestsPerMinute: ptr[int64](1 << 40)}, UpdateMask: apitest.Mask("requests_per_minute")},
		"tiny timeout":   {TenantId: a.ID, Overrides: &quartersv1.TenantOverrides{StatementTimeoutMs: ptr[int64](1)}, UpdateMask: apitest.Mask("statement_timeout_ms")},
		"bad feature":    {TenantId: a.ID, Overrides: &quartersv1.TenantOverrides{Features: map[string]bool{"Beta-Search": true}}, UpdateMask: apitest.Mask("features")},
		"many features":  {TenantId: a.ID, Overrides: &quartersv1.TenantOverrides{Features: manyFeatures(51)}, UpdateMask: apitest.Mask("features")},
		"bad tenant id":  {TenantId: "x", UpdateMask: apitest.Mask("burst")},
		"empty tenantid": {UpdateMask: apitest.Mask("burst")},
	} {
		_, err := p.SetOverrides(ctx, req(bad))
		require.Error(t, err, name)
		apitest.RequireCode(t, err, connect.CodeInvalidArgument)
	}
	_, err = p.SetOverrides(ctx, req(&quartersv1.SetOverridesRequest{TenantId: uuid.NewString(), UpdateMask: apitest.Mask("burst")}))
	require.Equal(t, "tenant not found", apitest.RequireCode(t, err, connect.CodeNotFound).Message())
}

// TestPlatformSuspend: a suspended tenant is refused on its next call, and
// works again once resumed; suspending twice is harmless.
func TestPlatformSuspend(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	p := s.Platform(t)
	a, b := s.SignUp(t), s.SignUp(t)
	proj := apitest.CreateProject(t, a, "kept")

	resp, err := p.SuspendTenant(ctx, req(&quartersv1.SuspendTenantRequest{TenantId: a.ID}))
	require.NoError(t, err)
	require.Equal(t, quartersv1.TenantStatus_TENANT_STATUS_SUSPENDED, resp.Msg.GetDetails().GetTenant().GetStatus())
	require.Equal(t, map[string]any{"status": "active"}, resp.Msg.GetAuditEvent().GetBefore().AsMap())
	require.Equal(t, map[string]any{"status": "suspended"}, resp.Msg.GetAuditEvent().GetAfter().AsMap())

	_, err = a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	cerr := apitest.RequireCode(t, err, connect.CodePermissionDenied)
	require.Equal(t, "TENANT_SUSPENDED", apitest.ErrorInfo(t, cerr).GetReason())
	_, err = a.Plans.GetPlan(ctx, req(&quartersv1.GetPlanRequest{}))
	require.Equal(t, "TENANT_SUSPENDED", apitest.ErrorInfo(t, apitest.RequireCode(t, err, connect.CodePermissionDenied)).GetReason())
	apitest.CreateProject(t, b, "b is unaffected")

	// Again: succeeds, changes nothing, and is audited as a no-op.
	again, err := p.SuspendTenant(ctx, req(&quartersv1.SuspendTenantRequest{TenantId: a.ID}))
	require.NoError(t, err)
	require.Equal(t, quartersv1.TenantStatus_TENANT_STATUS_SUSPENDED, again.Msg.GetDetails().GetTenant().GetStatus())
	require.Equal(t, map[string]any{"status": "suspended"}, again.Msg.GetAuditEvent().GetBefore().AsMap())
	require.Equal(t, map[string]any{"status": "suspended"}, again.Msg.GetAuditEvent().GetAfter().AsMap())

	resumed, err := p.ResumeTenant(ctx, req(&quartersv1.ResumeTenantRequest{TenantId: a.ID}))
	require.NoError(t, err)
	require.Equal(t, quartersv1.TenantStatus_TENANT_STATUS_ACTIVE, resumed.Msg.GetDetails().GetTenant().GetStatus())
	require.Equal(t, map[string]any{"status": "suspended"}, resumed.Msg.GetAuditEvent().GetBefore().AsMap())
	require.Equal(t, map[string]any{"status": "active"}, resumed.Msg.GetAuditEvent().GetAfter().AsMap())
	list, err := a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
	require.Len(t, list.Msg.GetProjects(), 1)
	require.Equal(t, proj.GetId(), list.Msg.GetProjects()[0].GetId())

	_, err = p.ResumeTenant(ctx, req(&quartersv1.ResumeTenantRequest{TenantId: uuid.NewString()}))
	require.Equal(t, "tenant not found", apitest.RequireCode(t, err, connect.CodeNotFound).Message())
}

// TestPlatformAudit: every change made exactly one audit record, in the
// changed tenant's rows; reads and failed calls made none; lists are newest
// first, paged, and filtered by tenant.
func TestPlatformAudit(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	p := s.Platform(t)
	a, b := s.SignUp(t), s.SignUp(t)

	var made []*quartersv1.AuditEvent // oldest first
	must := func(ev *quartersv1.AuditEvent, err error) {
		t.Helper()
		require.NoError(t, err)
		made = append(made, ev)
	}
	must(auditOf(p.SetPlan(ctx, req(&quartersv1.SetPlanRequest{TenantId: a.ID, Plan: "pro"}))))
	must(auditOf(p.SetOverrides(ctx, req(&quartersv1.SetOverridesRequest{TenantId: a.ID,
		Overrides: &quartersv1.TenantOverrides{Burst: ptr[int64](50)}, UpdateMask: apitest.Mask("burst")}))))
	must(auditOf(p.SetPlan(ctx, req(&quartersv1.SetPlanRequest{TenantId: b.ID, Plan: "enterprise"}))))
	must(auditOf(p.SuspendTenant(ctx, req(&quartersv1.SuspendTenantRequest{TenantId: a.ID}))))
	must(auditOf(p.SuspendTenant(ctx, req(&quartersv1.SuspendTenantRequest{TenantId: a.ID}))))
	must(auditOf(p.ResumeTenant(ctx, req(&quartersv1.ResumeTenantRequest{TenantId: a.ID}))))

	// Reads and refusals leave no record.
	_, err := p.GetTenant(ctx, req(&quartersv1.PlatformServiceGetTenantRequest{TenantId: a.ID}))
	require.NoError(t, err)
	_, err = p.ListTenants(ctx, req(&quartersv1.ListTenantsRequest{}))
	require.NoError(t, err)
	_, err = p.SetPlan(ctx, req(&quartersv1.SetPlanRequest{TenantId: a.ID, Plan: "platinum"}))
	apitest.RequireCode(t, err, connect.CodeNotFound)

	ids := func(evs []*quartersv1.AuditEvent) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e.GetId())
		}
		return out
	}
	newestFirst := func(evs ...*quartersv1.AuditEvent) []string {
		out := ids(evs)
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
		return out
	}

	all := auditEvents(t, p, "")
	require.Equal(t, newestFirst(made...), ids(all))
	for i, e := range all {
		want := made[len(made)-1-i]
		require.Equal(t, want.GetTenantId(), e.GetTenantId())
		require.Equal(t, want.GetAction(), e.GetAction())
		require.Equal(t, "platform", e.GetActor())
		require.Equal(t, want.GetBefore().AsMap(), e.GetBefore().AsMap())
		require.Equal(t, want.GetAfter().AsMap(), e.GetAfter().AsMap())
		require.True(t, want.GetCreateTime().AsTime().Equal(e.GetCreateTime().AsTime()))
	}

	aEvents := auditEvents(t, p, a.ID)
	require.Equal(t, newestFirst(made[0], made[1], made[3], made[4], made[5]), ids(aEvents))
	var actions []string
	for _, e := range aEvents {
		actions = append(actions, e.GetAction())
	}
	require.Equal(t, []string{"ResumeTenant", "SuspendTenant", "SuspendTenant", "SetOverrides", "SetPlan"}, actions)
	require.Equal(t, map[string]any{"plan": "free"}, aEvents[4].GetBefore().AsMap())
	require.Equal(t, map[string]any{"plan": "pro"}, aEvents[4].GetAfter().AsMap())
	require.Nil(t, aEvents[3].GetBefore().AsMap()["burst"])
	require.Equal(t, float64(50), aEvents[3].GetAfter().AsMap()["burst"])

	bEvents := auditEvents(t, p, b.ID)
	require.Equal(t, newestFirst(made[2]), ids(bEvents))
	require.Equal(t, map[string]any{"plan": "enterprise"}, bEvents[0].GetAfter().AsMap())
	require.Empty(t, auditEvents(t, p, uuid.NewString()), "unknown tenant lists nothing")

	// Paging: pages of 2 over a's 5 events; the token is bound to the filter.
	var paged []*quartersv1.AuditEvent
	token, pages := "", 0
	for {
		resp, err := p.ListAuditEvents(ctx, req(&quartersv1.ListAuditEventsRequest{TenantId: a.ID, PageSize: 2, PageToken: token}))
		require.NoError(t, err)
		require.LessOrEqual(t, len(resp.Msg.GetAuditEvents()), 2)
		paged = append(paged, resp.Msg.GetAuditEvents()...)
		pages++
		if token = resp.Msg.GetNextPageToken(); token == "" {
			break
		}
		_, err = p.ListAuditEvents(ctx, req(&quartersv1.ListAuditEventsRequest{TenantId: b.ID, PageToken: token}))
		apitest.RequireCode(t, err, connect.CodeInvalidArgument)
	}
	require.Equal(t, 3, pages)
	require.Equal(t, ids(aEvents), ids(paged))
	resp, err := p.ListAuditEvents(ctx, req(&quartersv1.ListAuditEventsRequest{PageSize: 4}))
	require.NoError(t, err)
	require.Equal(t, ids(all[:4]), ids(resp.Msg.GetAuditEvents()))
	resp, err = p.ListAuditEvents(ctx, req(&quartersv1.ListAuditEventsRequest{PageSize: 4, PageToken: resp.Msg.GetNextPageToken()}))
	require.NoError(t, err)
	require.Equal(t, ids(all[4:]), ids(resp.Msg.GetAuditEvents()))
	require.Empty(t, resp.Msg.GetNextPageToken())

	_, err = p.ListAuditEvents(ctx, req(&quartersv1.ListAuditEventsRequest{TenantId: "nope"}))
	apitest.RequireCode(t, err, connect.CodeInvalidArgument)
}

// TestAuditEventsRowLevelSecurity: at the SQL level, tenant B's own
// transaction sees none of A's audit records, cannot write one for A, and
// cannot change or delete even its own; the platform lookup returns nothing
// inside a tenant's transaction.
func TestAuditEventsRowLevelSecurity(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	p := s.Platform(t)
	a, b := s.SignUp(t), s.SignUp(t)
	for _, plan := range []string{"pro", "enterprise", "free"} {
		_, err := p.SetPlan(ctx, req(&quartersv1.SetPlanRequest{TenantId: a.ID, Plan: plan}))
		require.NoError(t, err)
	}
	_, err := p.SuspendTenant(ctx, req(&quartersv1.SuspendTenantRequest{TenantId: b.ID}))
	require.NoError(t, err)
	aID, bID := uuid.MustParse(a.ID), uuid.MustParse(b.ID)

	listAs := func(actor, of uuid.UUID) []dbsqlc.AuditEvent {
		t.Helper()
		var rows []dbsqlc.AuditEvent
		err := s.DB.InTenant(tenancy.NewContext(ctx, tenancy.Tenant{ID: actor}), func(q *dbsqlc.Queries) error {
			var err error
			rows, err = q.AuditEventList(ctx, dbsqlc.AuditEventListParams{
				TenantID: of, BeforeTime: page.Start.Time, BeforeID: page.Start.ID, PageLimit: 100,
			})
			return err
		})
		require.NoError(t, err)
		return rows
	}
	require.Len(t, listAs(aID, aID), 3)
	require.Empty(t, listAs(bID, aID), "tenant B read A's audit records")
	bOwn := listAs(bID, bID)
	require.Len(t, bOwn, 1)
	require.Equal(t, "SuspendTenant", bOwn[0].Action)

	// Raw SQL in B's transaction, as db.InTenant sets it up.
	inB := func(fn func(tx pgx.Tx) error) error {
		tx, err := s.DB.Pool().Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(context.Background()) }()
		_, err = tx.Exec(ctx, "select set_config('app.tenant_id', $1, true)", b.ID)
		require.NoError(t, err)
		return fn(tx)
	}
	count := func(sql string, args ...any) int {
		t.Helper()
		var n int
		require.NoError(t, inB(func(tx pgx.Tx) error { return tx.QueryRow(ctx, sql, args...).Scan(&n) }))
		return n
	}
	require.Equal(t, 1, count("select count(*) from audit_events"), "no filter: RLS still limits B to its own")
	require.Equal(t, 0, count("select count(*) from audit_events where tenant_id = $1", a.ID))
	require.Equal(t, 0, count("select count(*) from app.platform_audit_event_list($1, $2, 100)", page.Start.Time, page.Start.ID),
		"the platform lookup answered inside a tenant's transaction")
	require.Equal(t, 0, count("select count(*) from app.platform_tenant_list(null, null, $1, $2, 100)", page.Start.Time, page.Start.ID))

	requireSQLState := func(code string, err error) {
		t.Helper()
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), "want SQLSTATE %s, got %v", code, err)
		require.Equal(t, code, pgErr.Code, pgErr.Message)
	}
	const insufficientPrivilege = "42501" // also RLS WITH CHECK failures
	requireSQLState(insufficientPrivilege, inB(func(tx pgx.Tx) error {
		_, err := dbsqlc.New(tx).AuditEventInsert(ctx, dbsqlc.AuditEventInsertParams{
			TenantID: aID, Actor: "forger", Action: "SetPlan", Before: []byte(`{}`), After: []byte(`{}`),
		})
		return err
	}))
	requireSQLState(insufficientPrivilege, inB(func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "update audit_events set actor = 'someone else'")
		return err
	}))
	requireSQLState(insufficientPrivilege, inB(func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "delete from audit_events")
		return err
	}))
	require.Len(t, auditEvents(t, p, a.ID), 3)
	require.Len(t, auditEvents(t, p, b.ID), 1)
}

// TestPlatformReplicas: a suspension made through one replica stops the
// tenant on another at once (Redis pub/sub); with Redis down, a change is
// still saved and audited, and the answer says for how long other
// replicas may serve the previous state.
func TestPlatformReplicas(t *testing.T) {
	t.Parallel()
	rs := redistest.New(t)
	s1 := servertest.NewWith(t, &servertest.Opts{Redis: rs.Options()})
	s2 := servertest.NewWith(t, &servertest.Opts{Redis: rs.Options(), Share: s1})
	a1 := s1.SignUp(t)
	a2 := s2.As(a1.ID, a1.Slug, a1.Key)
	require.Equal(t, "free", getPlan(t, a2).GetPlan()) // replica 2 caches it

	_, err := s1.Platform(t).SetPlan(ctx, req(&quartersv1.SetPlanRequest{TenantId: a1.ID, Plan: "pro"}))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		r, err := a2.Plans.GetPlan(ctx, req(&quartersv1.GetPlanRequest{}))
		return err == nil && r.Msg.GetPlan() == "pro"
	}, time.Second, 10*time.Millisecond, "replica 2 still serves the old plan")

	rs.Stop()
	changed, err := s1.Platform(t).SetPlan(ctx, req(&quartersv1.SetPlanRequest{TenantId: a1.ID, Plan: "enterprise"}))
	require.NoError(t, err)
	require.Equal(t, "60", changed.Header().Get(tenant.HeaderPropagationDelay))
	got, err := s1.Platform(t).GetTenant(ctx, req(&quartersv1.PlatformServiceGetTenantRequest{TenantId: a1.ID}))
	require.NoError(t, err)
	require.Equal(t, "enterprise", got.Msg.GetDetails().GetTenant().GetPlan())
	evs := auditEvents(t, s1.Platform(t), a1.ID)
	require.Len(t, evs, 2)
	require.Equal(t, map[string]any{"plan": "enterprise"}, evs[0].GetAfter().AsMap())
	require.Equal(t, "enterprise", getPlan(t, a1).GetPlan(), "the replica that made the change dropped its own copy")
}

func getPlan(t *testing.T, tn *servertest.Tenant) *quartersv1.GetPlanResponse {
	t.Helper()
	resp, err := tn.Plans.GetPlan(ctx, req(&quartersv1.GetPlanRequest{}))
	require.NoError(t, err)
	return resp.Msg
}

// auditEvents lists every audit event (of tenantID, unless empty), newest
// first, across pages.
func auditEvents(t *testing.T, p quartersv1connect.PlatformServiceClient, tenantID string) []*quartersv1.AuditEvent {
	t.Helper()
	var out []*quartersv1.AuditEvent
	token := ""
	for {
		resp, err := p.ListAuditEvents(ctx, req(&quartersv1.ListAuditEventsRequest{TenantId: tenantID, PageSize: 100, PageToken: token}))
		require.NoError(t, err)
		out = append(out, resp.Msg.GetAuditEvents()...)
		if token = resp.Msg.GetNextPageToken(); token == "" {
			return out
		}
	}
}

// auditOf is the audit event of a change's response.
func auditOf[M any, PM interface {
	*M
	GetAuditEvent() *quartersv1.AuditEvent
}](resp *connect.Response[M], err error) (*quartersv1.AuditEvent, error) {
	if err != nil {
		return nil, err
	}
	return PM(resp.Msg).GetAuditEvent(), nil
}

func manyFeatures(n int) map[string]bool {
	m := map[string]bool{}
	for i := range n {
		m["feature_"+string(rune('a'+i/26))+string(rune('a'+i%26))] = true
	}
	return m
}

func ptr[T any](v T) *T { return &v }
