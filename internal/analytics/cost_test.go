package analytics_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db/dbtest"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// dates is yesterday and today (UTC): a range a test's calls stay inside
// even if it runs across midnight.
func dates() (string, string) {
	now := time.Now().UTC()
	return now.AddDate(0, 0, -1).Format("2006-01-02"), now.Format("2006-01-02")
}

// getCost is the caller's cost over yesterday and today.
func getCost(t *testing.T, tn *servertest.Tenant) *quartersv1.GetCostResponse {
	t.Helper()
	start, end := dates()
	resp, err := tn.Analytics.GetCost(ctx, req(&quartersv1.GetCostRequest{StartDate: start, EndDate: end}))
	require.NoError(t, err)
	require.Len(t, resp.Msg.GetDays(), 2)
	require.Equal(t, start, resp.Msg.GetDays()[0].GetDate())
	require.Equal(t, end, resp.Msg.GetDays()[1].GetDate())
	return resp.Msg
}

// costTenant signs up a tenant with the analytics feature (plan pro), no
// rate limit in the way, a project and docs documents in it.
func costTenant(t *testing.T, s *servertest.Server, docs int) (*servertest.Tenant, string) {
	t.Helper()
	a := s.SignUp(t)
	s.SetPlan(t, a.ID, "pro")
	s.Unthrottle(t, a.ID)
	p := apitest.CreateProject(t, a, "costed")
	for i := range docs {
		apitest.CreateDocument(t, a, p.GetId(), "doc "+string(rune('a'+i)))
	}
	return a, p.GetId()
}

// listDocs calls ListDocuments n times and returns the documents returned
// in all.
func listDocs(t *testing.T, tn *servertest.Tenant, projectID string, n int) int64 {
	t.Helper()
	var docs int64
	for range n {
		resp, err := tn.Documents.ListDocuments(ctx, req(&quartersv1.ListDocumentsRequest{ProjectId: projectID}))
		require.NoError(t, err)
		docs += int64(len(resp.Msg.GetDocuments()))
	}
	return docs
}

// TestGetCostCountsRealCalls: after N ListDocuments calls, the tenant's
// cost has exactly N more calls (plus the GetCost before them, counted
// once it finished), at least the rows the calls returned, and database
// time; the days add up to the total.
func TestGetCostCountsRealCalls(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a, project := costTenant(t, s, 4)

	before := getCost(t, a)
	require.Positive(t, before.GetTotal().GetCalls(), "sign-up's and the set-up's calls")
	const n = 7
	docs := listDocs(t, a, project, n)
	require.Equal(t, int64(4*n), docs)
	after := getCost(t, a)

	require.Equal(t, before.GetTotal().GetCalls()+1+n, after.GetTotal().GetCalls(), "N ListDocuments and the first GetCost")
	require.GreaterOrEqual(t, after.GetTotal().GetRows()-before.GetTotal().GetRows(), docs)
	require.Greater(t, after.GetTotal().GetDbTimeMicros(), before.GetTotal().GetDbTimeMicros())
	var sum quartersv1.Cost
	for _, d := range after.GetDays() {
		sum.Calls += d.GetCost().GetCalls()
		sum.DbTimeMicros += d.GetCost().GetDbTimeMicros()
		sum.Rows += d.GetCost().GetRows()
	}
	require.Equal(t, after.GetTotal().GetCalls(), sum.Calls)
	require.Equal(t, after.GetTotal().GetDbTimeMicros(), sum.DbTimeMicros)
	require.Equal(t, after.GetTotal().GetRows(), sum.Rows)

	// A range is one entry per day, zeros included.
	resp, err := a.Analytics.GetCost(ctx, req(&quartersv1.GetCostRequest{StartDate: "2026-01-30", EndDate: "2026-02-02"}))
	require.NoError(t, err)
	require.Len(t, resp.Msg.GetDays(), 4)
	require.Equal(t, "2026-02-02", resp.Msg.GetDays()[3].GetDate())
}

// TestGetCostTenantIsolation: a second tenant sees only its own cost, and
// nothing of the first tenant's calls changes what it sees: its figures
// move by its own GetCost calls only.
func TestGetCostTenantIsolation(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a, project := costTenant(t, s, 3)
	b, _ := costTenant(t, s, 0)

	b1 := getCost(t, b)
	a1 := getCost(t, a)
	listDocs(t, a, project, 20)
	a2 := getCost(t, a)
	b2 := getCost(t, b)
	require.Equal(t, a1.GetTotal().GetCalls()+1+20, a2.GetTotal().GetCalls())
	require.Equal(t, b1.GetTotal().GetCalls()+1, b2.GetTotal().GetCalls(), "B's cost moved by A's calls")
	// B's rows and time grew by its one GetCost only: less than A's
	// twenty-one calls that returned 60 documents.
	require.Less(t, b2.GetTotal().GetRows()-b1.GetTotal().GetRows(), a2.GetTotal().GetRows()-a1.GetTotal().GetRows())

	// The operator sees each tenant's own figures under its id.
	start, end := dates()
	for _, tc := range []struct {
		tn   *servertest.Tenant
		want *quartersv1.Cost
	}{{a, a2.GetTotal()}, {b, b2.GetTotal()}} {
		resp, err := s.Platform(t).GetTenantCost(ctx, req(&quartersv1.GetTenantCostRequest{TenantId: tc.tn.ID, StartDate: start, EndDate: end}))
		require.NoError(t, err)
		// Plus the GetCost that returned want.
		require.Equal(t, tc.want.GetCalls()+1, resp.Msg.GetTotal().GetCalls())
	}
}

// TestGetCostAccess: GetCost needs the analytics feature and an admin; a
// member is refused, whether signed in or with a member key.
func TestGetCostAccess(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	s.Unthrottle(t, a.ID)
	start, end := dates()
	call := func(tn *servertest.Tenant) error {
		_, err := tn.Analytics.GetCost(ctx, req(&quartersv1.GetCostRequest{StartDate: start, EndDate: end}))
		return err
	}
	cerr := apitest.RequireCode(t, call(a), connect.CodePermissionDenied)
	require.Equal(t, "FEATURE_NOT_AVAILABLE", apitest.ErrorInfo(t, cerr).GetReason())

	s.SetPlan(t, a.ID, "pro")
	require.NoError(t, call(a), "the sign-up key is an admin key")
	member := s.AsUser(apitest.Join(t, s, a, "member@"+a.Slug+".example", quartersv1.Role_ROLE_MEMBER))
	_, memberKey := apitest.CreateKey(t, s.AsUser(a.Owner), "member key", quartersv1.Role_ROLE_MEMBER)
	admin := s.AsUser(apitest.Join(t, s, a, "admin@"+a.Slug+".example", quartersv1.Role_ROLE_ADMIN))

	before := getCost(t, admin).GetTotal().GetCalls()
	apitest.RequireCode(t, call(member), connect.CodePermissionDenied)
	apitest.RequireCode(t, call(s.As(a.ID, a.Slug, memberKey)), connect.CodePermissionDenied)
	apitest.RequireCode(t, call(s.As("", "", "")), connect.CodeUnauthenticated)
	// The two refused calls were the tenant's, and are counted (with the
	// GetCost before them); the anonymous one bound no tenant.
	require.Equal(t, before+1+2, getCost(t, admin).GetTotal().GetCalls())
}

// TestGetCostValidation: ranges backwards, longer than 92 days, or of
// dates that do not exist are INVALID_ARGUMENT with a message saying why.
func TestGetCostValidation(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a, _ := costTenant(t, s, 0)
	for _, bad := range []struct{ start, end, msg string }{
		{"2026-02-02", "2026-01-30", "on or after start_date"},
		{"2026-01-01", "2026-04-03", "at most 92 days"},
		{"2026-02-30", "2026-03-01", "start_date must be a real calendar date"},
		{"2026-02-27", "2026-02-29", "end_date must be a real calendar date"},
		{"yesterday", "today", "start_date"},
	} {
		_, err := a.Analytics.GetCost(ctx, req(&quartersv1.GetCostRequest{StartDate: bad.start, EndDate: bad.end}))
		cerr := apitest.RequireCode(t, err, connect.CodeInvalidArgument)
		require.Contains(t, cerr.Message(), bad.msg, "%s..%s", bad.start, bad.end)
	}
	// 92 days, both ends included, is the longest range.
	resp, err := a.Analytics.GetCost(ctx, req(&quartersv1.GetCostRequest{StartDate: "2026-01-01", EndDate: "2026-04-02"}))
	require.NoError(t, err)
	require.Len(t, resp.Msg.GetDays(), 92)
}

// TestCostSurvivesRestart: a clean shutdown flushes the calls counted in
// memory; the server started again on the same database reports them all,
// exactly.
func TestCostSurvivesRestart(t *testing.T) {
	t.Parallel()
	pg := dbtest.NewPrivate(t)
	var a *servertest.Tenant
	var want int64
	t.Run("first server", func(t *testing.T) {
		s := servertest.NewWith(t, &servertest.Opts{Database: pg})
		var project string
		a, project = costTenant(t, s, 2)
		want = getCost(t, a).GetTotal().GetCalls() + 1 // and that GetCost
		listDocs(t, a, project, 9)
		want += 9
		// The subtest's end stops the server: the final flush.
	})
	s := servertest.NewWith(t, &servertest.Opts{Database: pg})
	got := getCost(t, s.As(a.ID, a.Slug, a.Key))
	require.Equal(t, want, got.GetTotal().GetCalls())
}

// TestReadmeCostExample runs README's cost example (between the
// cost:start and cost:end markers) with curl against a real server: the
// tenant's admin key reads its cost, the platform key lists it.
func TestReadmeCostExample(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("curl is needed to run README's example: %v", err)
	}
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	block := regexp.MustCompile("(?s)<!-- cost:start -->\\s*```sh\n(.*?)```\\s*<!-- cost:end -->").FindSubmatch(readme)
	require.NotNil(t, block, "README lost its cost example")

	s := servertest.New(t)
	a, project := costTenant(t, s, 2)
	listDocs(t, a, project, 3)
	day := time.Now().UTC().Format("2006-01-02")
	cmd := exec.CommandContext(ctx, "sh", "-e", "-c", string(block[1]))
	cmd.Env = append(os.Environ(), "Q="+s.URL, "KEY="+a.Key, "QUARTERS_PLATFORM_KEY="+s.PlatformKey, "DAY="+day)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 2, string(out))

	var own struct {
		Days []struct {
			Date string
			Cost struct{ Calls, DBTimeMicros, Rows string }
		}
		Total struct {
			Calls        string
			DBTimeMicros string `json:"dbTimeMicros"`
			Rows         string
		}
	}
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &own), lines[0])
	require.Len(t, own.Days, 1)
	require.Equal(t, day, own.Days[0].Date)
	calls, err := strconv.Atoi(own.Total.Calls)
	require.NoError(t, err, lines[0])
	require.Greater(t, calls, 3+2, "the ListDocuments and CreateDocument calls at least")
	require.NotEmpty(t, own.Total.DBTimeMicros)
	require.NotEmpty(t, own.Total.Rows)

	var all struct {
		TenantCosts []struct {
			TenantID string `json:"tenantId"`
			Cost     struct{ Calls string }
		}
	}
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &all), lines[1])
	require.Len(t, all.TenantCosts, 1)
	require.Equal(t, a.ID, all.TenantCosts[0].TenantID)
	// The operator's figure includes the tenant's GetCost just before.
	require.Equal(t, strconv.Itoa(calls+1), all.TenantCosts[0].Cost.Calls)
}
