package plan_test

import (
	"sync"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/servertest"
)

func TestGetPlan(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	apitest.CreateProject(t, a, "one")
	get := func() *quartersv1.GetPlanResponse {
		resp, err := a.Plans.GetPlan(ctx, req(&quartersv1.GetPlanRequest{}))
		require.NoError(t, err)
		return resp.Msg
	}

	free := get()
	require.Equal(t, "free", free.GetPlan())
	require.Equal(t, int64(100), free.GetLimits().GetRequestsPerMinute())
	require.Equal(t, int64(5), free.GetLimits().GetMaxProjects())
	require.Equal(t, int64(2000), free.GetLimits().GetStatementTimeoutMs())
	require.Empty(t, free.GetFeatures())
	require.Equal(t, int64(1), free.GetUsage().GetProjects())
	require.Equal(t, int64(1), free.GetUsage().GetMembers(), "the owner")
	_, err := a.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "new@" + a.Slug + ".example", Role: quartersv1.Role_ROLE_MEMBER}))
	require.NoError(t, err)
	require.Equal(t, int64(2), get().GetUsage().GetMembers(), "a pending invitation holds a seat")

	// An upgrade shows at once (the cache was invalidated, not expired).
	s.SetPlan(t, a.ID, "enterprise")
	ent := get()
	require.Equal(t, "enterprise", ent.GetPlan())
	require.Equal(t, int64(10000), ent.GetLimits().GetRequestsPerMinute())
	require.Equal(t, []string{"analytics", "custom_webhooks"}, ent.GetFeatures())

	// Overrides win over the plan, for limits and single features.
	s.Exec(t, a.ID, `insert into tenant_overrides (tenant_id, max_projects, features)
		values ($1, 7, '{"custom_webhooks": false, "beta_search": true}')`, a.ID)
	over := get()
	require.Equal(t, int64(7), over.GetLimits().GetMaxProjects())
	require.Equal(t, int64(10000), over.GetLimits().GetRequestsPerMinute())
	require.Equal(t, []string{"analytics", "beta_search"}, over.GetFeatures())
}

// TestProjectQuotaRace: 20 parallel creates against a limit of 5 create
// exactly 5; the rest are RESOURCE_EXHAUSTED with a QuotaFailure; deleting
// one frees its slot.
func TestProjectQuotaRace(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	s.Unthrottle(t, a.ID) // the rate limit is not under test
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		created  []string
		refusals []error
	)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := a.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: "racer"}))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refusals = append(refusals, err)
				return
			}
			created = append(created, resp.Msg.GetProject().GetId())
		}()
	}
	wg.Wait()
	require.Len(t, created, 5)
	require.Len(t, refusals, 15)
	for _, err := range refusals {
		cerr := apitest.RequireCode(t, err, connect.CodeResourceExhausted)
		require.Contains(t, cerr.Message(), `plan "free" allows 5 projects`)
		var qf *errdetails.QuotaFailure
		for _, d := range cerr.Details() {
			if v, err := d.Value(); err == nil {
				if q, ok := v.(*errdetails.QuotaFailure); ok {
					qf = q
				}
			}
		}
		require.NotNil(t, qf, "no QuotaFailure detail")
		require.Equal(t, "max_projects", qf.GetViolations()[0].GetQuotaId())
		require.Equal(t, int64(5), qf.GetViolations()[0].GetQuotaValue())
	}
	list, err := a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
	require.Len(t, list.Msg.GetProjects(), 5)

	_, err = a.Projects.DeleteProject(ctx, req(&quartersv1.DeleteProjectRequest{Id: created[0]}))
	require.NoError(t, err)
	apitest.CreateProject(t, a, "freed slot")
	_, err = a.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: "sixth"}))
	apitest.RequireCode(t, err, connect.CodeResourceExhausted)

	// Another tenant's quota is its own.
	b := s.SignUp(t)
	apitest.CreateProject(t, b, "b's first")
}
