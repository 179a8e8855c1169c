package platform_test

import (
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// TestListTenantCosts: every tenant with calls in the range is listed
// once, the most database time first, across pages of the existing page
// tokens; each tenant's figures are those GetTenantCost and the tenant's
// own GetCost report. A tenant's key cannot call either RPC.
func TestListTenantCosts(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	today := time.Now().UTC().Format("2006-01-02")
	calls := map[string]int{}
	var tenants []*servertest.Tenant
	for i := range 4 {
		tn := s.SignUp(t)
		s.SetPlan(t, tn.ID, "pro")
		s.Unthrottle(t, tn.ID)
		for range 3*i + 1 {
			require.NoError(t, apitest.ListProjects(tn))
		}
		calls[tn.ID] = 3*i + 1
		tenants = append(tenants, tn)
	}
	plat := s.Platform(t)

	// GetTenantCost first: it flushes only the tenant it names.
	want := map[string]*quartersv1.Cost{}
	for _, tn := range tenants {
		resp, err := plat.GetTenantCost(ctx, req(&quartersv1.GetTenantCostRequest{TenantId: tn.ID, StartDate: today, EndDate: today}))
		require.NoError(t, err)
		require.Len(t, resp.Msg.GetDays(), 1)
		require.Equal(t, resp.Msg.GetTotal().GetCalls(), resp.Msg.GetDays()[0].GetCost().GetCalls())
		want[tn.ID] = resp.Msg.GetTotal()
	}
	// The tenants differ by their ListProjects calls exactly.
	for _, tn := range tenants[1:] {
		require.Equal(t, int64(calls[tn.ID]-calls[tenants[0].ID]), want[tn.ID].GetCalls()-want[tenants[0].ID].GetCalls())
	}

	got := map[string]*quartersv1.Cost{}
	var order []*quartersv1.TenantCost
	token, pages := "", 0
	for {
		resp, err := plat.ListTenantCosts(ctx, req(&quartersv1.ListTenantCostsRequest{StartDate: today, EndDate: today, PageSize: 3, PageToken: token}))
		require.NoError(t, err)
		pages++
		for _, tc := range resp.Msg.GetTenantCosts() {
			require.NotContains(t, got, tc.GetTenantId(), "listed twice")
			got[tc.GetTenantId()] = tc.GetCost()
			order = append(order, tc)
		}
		if token = resp.Msg.GetNextPageToken(); token == "" {
			break
		}
		require.Less(t, pages, 5)
	}
	require.Equal(t, 2, pages)
	require.Len(t, got, len(tenants))
	for id, w := range want {
		require.Equal(t, w.GetCalls(), got[id].GetCalls(), id)
		require.Equal(t, w.GetDbTimeMicros(), got[id].GetDbTimeMicros(), id)
		require.Equal(t, w.GetRows(), got[id].GetRows(), id)
	}
	for i := 1; i < len(order); i++ {
		require.GreaterOrEqual(t, order[i-1].GetCost().GetDbTimeMicros(), order[i].GetCost().GetDbTimeMicros(), "ordered by database time")
	}

	// The tenant's own view agrees (its GetCost is counted once it ends).
	own, err := tenants[2].Analytics.GetCost(ctx, req(&quartersv1.GetCostRequest{StartDate: today, EndDate: today}))
	require.NoError(t, err)
	require.Equal(t, want[tenants[2].ID].GetCalls(), own.Msg.GetTotal().GetCalls())

	// A range without calls lists nothing; a token is bound to its dates.
	resp, err := plat.ListTenantCosts(ctx, req(&quartersv1.ListTenantCostsRequest{StartDate: "2020-01-01", EndDate: "2020-01-31"}))
	require.NoError(t, err)
	require.Empty(t, resp.Msg.GetTenantCosts())
	first, err := plat.ListTenantCosts(ctx, req(&quartersv1.ListTenantCostsRequest{StartDate: today, EndDate: today, PageSize: 1}))
	require.NoError(t, err)
	require.NotEmpty(t, first.Msg.GetNextPageToken())
	_, err = plat.ListTenantCosts(ctx, req(&quartersv1.ListTenantCostsRequest{StartDate: "2020-01-01", EndDate: today, PageToken: first.Msg.GetNextPageToken()}))
	apitest.RequireCode(t, err, connect.CodeInvalidArgument)
	_, err = plat.ListTenantCosts(ctx, req(&quartersv1.ListTenantCostsRequest{StartDate: "2026-01-01", EndDate: "2026-04-03"}))
	cerr := apitest.RequireCode(t, err, connect.CodeInvalidArgument)
	require.Contains(t, cerr.Message(), "at most 92 days")

	// Unknown tenants are NOT_FOUND.
	_, err = plat.GetTenantCost(ctx, req(&quartersv1.GetTenantCostRequest{TenantId: uuid.NewString(), StartDate: today, EndDate: today}))
	apitest.RequireCode(t, err, connect.CodeNotFound)

	// A tenant's admin key is not the platform credential.
	asTenant := quartersv1connect.NewPlatformServiceClient(s.HTTP, s.URL, connect.WithInterceptors(servertest.Bearer(tenants[1].Key)))
	_, err = asTenant.ListTenantCosts(ctx, req(&quartersv1.ListTenantCostsRequest{StartDate: today, EndDate: today}))
	apitest.RequireCode(t, err, connect.CodePermissionDenied)
	_, err = asTenant.GetTenantCost(ctx, req(&quartersv1.GetTenantCostRequest{TenantId: tenants[1].ID, StartDate: today, EndDate: today}))
	apitest.RequireCode(t, err, connect.CodePermissionDenied)
}
