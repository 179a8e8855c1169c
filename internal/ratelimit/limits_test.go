package ratelimit_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/ratelimit"
	"github.com/quarters-dev/quarters/internal/redistest"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// exhaust calls ListProjects until the rate limit refuses, and returns the
// number allowed and the refusal.
func exhaust(t *testing.T, tn *servertest.Tenant, max int) (int, *connect.Error) {
	t.Helper()
	for i := range max {
		_, err := tn.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
		if err != nil {
			return i, apitest.RequireCode(t, err, connect.CodeResourceExhausted)
		}
	}
	t.Fatalf("no refusal in %d calls", max)
	return 0, nil
}

func retryInfo(t *testing.T, cerr *connect.Error) *errdetails.RetryInfo {
	t.Helper()
	for _, d := range cerr.Details() {
		if v, err := d.Value(); err == nil {
			if ri, ok := v.(*errdetails.RetryInfo); ok {
				return ri
			}
		}
	}
	t.Fatalf("no RetryInfo in %v", cerr)
	return nil
}

// TestRateLimit: the free plan's burst of 20 is let through, then
// RESOURCE_EXHAUSTED with Retry-After and RetryInfo that agree; every
// response carries the limit state.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)

	resp, err := a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
	h := resp.Header()
	require.Equal(t, "100", h.Get("X-RateLimit-Limit"))
	require.Equal(t, "19", h.Get("X-RateLimit-Remaining"))
	require.NotEmpty(t, h.Get("X-RateLimit-Reset"))
	require.NotEmpty(t, h.Get("RateLimit-Policy"))
	require.NotEmpty(t, h.Get("RateLimit"))

	allowed, cerr := exhaust(t, a, 50)
	require.InDelta(t, 19, allowed, 1, "burst 20, one used above")
	require.Contains(t, cerr.Message(), `plan "free"`)
	require.Contains(t, cerr.Message(), "100 requests per minute")
	require.Contains(t, cerr.Message(), "https://quarters.dev/pricing")
	retryAfter, err := strconv.Atoi(cerr.Meta().Get("Retry-After"))
	require.NoError(t, err)
	delay := retryInfo(t, cerr).GetRetryDelay().AsDuration()
	require.Positive(t, delay)
	require.Equal(t, int((delay+time.Second-1)/time.Second), retryAfter, "Retry-After is RetryInfo rounded up")
	require.Equal(t, "0", cerr.Meta().Get("X-RateLimit-Remaining"))

	// Connect over plain HTTP: status 429, with the headers, as curl sees it.
	r, err := http.NewRequest(http.MethodPost, s.URL+"/quarters.v1.ProjectService/ListProjects", strings.NewReader("{}"))
	require.NoError(t, err)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+a.Key)
	raw, err := s.HTTP.Do(r)
	require.NoError(t, err)
	body, _ := io.ReadAll(raw.Body)
	raw.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, raw.StatusCode, string(body))
	require.NotEmpty(t, raw.Header.Get("Retry-After"))
	require.Contains(t, string(body), `"code":"resource_exhausted"`)
	require.Contains(t, string(body), "google.rpc.RetryInfo")
}

// TestNoisyNeighbourServer: one tenant far over its limit changes nothing for
// another.
func TestNoisyNeighbourServer(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a, b := s.SignUp(t), s.SignUp(t)
	exhaust(t, a, 50)
	for range 10 {
		_, _ = a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	}
	resp, err := b.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
	require.Equal(t, "19", resp.Header().Get("X-RateLimit-Remaining"), "B starts from a full burst")
	allowed, _ := exhaust(t, b, 50)
	require.InDelta(t, 19, allowed, 1)
}

// TestCORS: browsers on other origins may call the API and read the rate
// limit state; preflights are cacheable.
func TestCORS(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	pre, err := http.NewRequest(http.MethodOptions, s.URL+"/quarters.v1.ProjectService/ListProjects", nil)
	require.NoError(t, err)
	pre.Header.Set("Origin", "https://app.example")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "authorization,connect-protocol-version,content-type") // sorted, as browsers send it
	resp, err := s.HTTP.Do(pre)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
	require.Equal(t, "7200", resp.Header.Get("Access-Control-Max-Age"))
	require.Contains(t, strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "authorization")

	r, err := http.NewRequest(http.MethodPost, s.URL+"/quarters.v1.ProjectService/ListProjects", strings.NewReader("{}"))
	require.NoError(t, err)
	r.Header.Set("Origin", "https://app.example")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+a.Key)
	resp, err = s.HTTP.Do(r)
	require.NoError(t, err)
	resp.Body.Close()
	exposed := resp.Header.Get("Access-Control-Expose-Headers")
	for _, h := range append(ratelimit.HeaderNames(), "X-Request-Id") {
		require.Contains(t, strings.ToLower(exposed), strings.ToLower(h))
	}
}

// TestMonthlyQuota: calls beyond max_api_calls_per_month are refused with
// a QuotaFailure.
func TestMonthlyQuota(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	s.Exec(t, a.ID, `insert into tenant_overrides (tenant_id, max_api_calls_per_month) values ($1, 5)`, a.ID)
	for range 5 {
		_, err := a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
		require.NoError(t, err)
	}
	_, err := a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	cerr := apitest.RequireCode(t, err, connect.CodeResourceExhausted)
	require.Contains(t, cerr.Message(), "max_api_calls_per_month")
	// The counts survive a flush (they move to the database, not away).
	require.NoError(t, s.Usage.Flush(ctx))
	_, err = a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	apitest.RequireCode(t, err, connect.CodeResourceExhausted)
}

// TestAnalytics: the feature gate, then counts that match the calls made.
func TestAnalytics(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	today := time.Now().UTC().Format("2006-01-02")
	usage := func() (*quartersv1.GetUsageResponse, error) {
		resp, err := a.Analytics.GetUsage(ctx, req(&quartersv1.GetUsageRequest{StartDate: today, EndDate: today}))
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	}

	_, err := usage()
	cerr := apitest.RequireCode(t, err, connect.CodePermissionDenied)
	info := apitest.ErrorInfo(t, cerr)
	require.Equal(t, "FEATURE_NOT_AVAILABLE", info.GetReason())
	require.Equal(t, "analytics", info.GetMetadata()["feature"])
	require.Equal(t, "free", info.GetMetadata()["plan"])
	require.NotEmpty(t, info.GetMetadata()["upgrade_url"])

	// Pro has analytics. Rate-limited calls are counted apart.
	s.SetPlan(t, a.ID, "pro")
	p := apitest.CreateProject(t, a, "counted")
	for range 3 {
		_, err := a.Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: p.GetId()}))
		require.NoError(t, err)
	}
	s.Exec(t, a.ID, `insert into tenant_overrides (tenant_id, requests_per_minute, burst) values ($1, 1, 1)`, a.ID)
	_, err = a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
	_, err = a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	apitest.RequireCode(t, err, connect.CodeResourceExhausted)
	s.Exec(t, a.ID, `delete from tenant_overrides where tenant_id = $1`, a.ID)

	u, err := usage()
	require.NoError(t, err)
	require.Len(t, u.GetDays(), 1)
	require.Equal(t, today, u.GetDays()[0].GetDate())
	got := map[string][2]int64{}
	for _, pu := range u.GetProcedures() {
		got[pu.GetProcedure()] = [2]int64{pu.GetRequests(), pu.GetRateLimited()}
	}
	require.Equal(t, map[string][2]int64{
		"/quarters.v1.AnalyticsService/GetUsage":    {2, 0}, // the refused call above, and this one
		"/quarters.v1.ProjectService/CreateProject": {1, 0},
		"/quarters.v1.ProjectService/GetProject":    {3, 0},
		"/quarters.v1.ProjectService/ListProjects":  {1, 1},
	}, got)
	require.Equal(t, int64(7), u.GetTotalRequests())
	require.Equal(t, int64(1), u.GetTotalRateLimited())

	// A range is one entry per day, zeros included; bad ranges are refused.
	resp, err := a.Analytics.GetUsage(ctx, req(&quartersv1.GetUsageRequest{StartDate: "2026-01-30", EndDate: "2026-02-02"}))
	require.NoError(t, err)
	require.Len(t, resp.Msg.GetDays(), 4)
	for _, bad := range []struct{ start, end, msg string }{
		{"2026-02-02", "2026-01-30", "end_date must be on or after start_date"},
		{"2026-01-01", "2026-12-31", "at most 92 days"},
		{"2026-01-01", "2026-04-03", "at most 92 days"},
		{"2026-02-30", "2026-03-01", "start_date must be a real calendar date"},
		{"2026-02-27", "2026-02-29", "end_date must be a real calendar date"},
		{"yesterday", "today", "start_date"},
	} {
		_, err := a.Analytics.GetUsage(ctx, req(&quartersv1.GetUsageRequest{StartDate: bad.start, EndDate: bad.end}))
		cerr := apitest.RequireCode(t, err, connect.CodeInvalidArgument)
		require.Contains(t, cerr.Message(), bad.msg, "%s..%s", bad.start, bad.end)
	}
	// 92 days, both ends included, is the longest range.
	resp, err = a.Analytics.GetUsage(ctx, req(&quartersv1.GetUsageRequest{StartDate: "2026-01-01", EndDate: "2026-04-02"}))
	require.NoError(t, err)
	require.Len(t, resp.Msg.GetDays(), 92)
}

// TestReplicasShareRedis: two server instances ("replicas") on one
// database and one Redis. An upgrade made through one reaches the other's
// cached record through pub/sub within a second, and both count against one
// rate limit.
func TestReplicasShareRedis(t *testing.T) {
	t.Parallel()
	rs := redistest.New(t)
	s1 := servertest.NewWith(t, &servertest.Opts{Redis: rs.Options()})
	s2 := servertest.NewWith(t, &servertest.Opts{Redis: rs.Options(), Share: s1})
	a1 := s1.SignUp(t)
	a2 := s2.As(a1.ID, a1.Slug, a1.Key)
	today := time.Now().UTC().Format("2006-01-02")
	getUsage := func() error {
		_, err := a2.Analytics.GetUsage(ctx, req(&quartersv1.GetUsageRequest{StartDate: today, EndDate: today}))
		return err
	}
	apitest.RequireCode(t, getUsage(), connect.CodePermissionDenied) // s2 now caches "free"

	s1.SetPlan(t, a1.ID, "pro") // invalidates through s1's cache: Redis pub/sub
	deadline := time.Now().Add(time.Second)
	for {
		err := getUsage()
		if err == nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "replica 2 still refuses a second after the upgrade: %v", err)
		time.Sleep(10 * time.Millisecond)
	}

	// One shared allowance: "pro" has a burst of 200; calls spread over both
	// replicas stop near 200 in total, not 400.
	allowed := 0
	for i := range 500 {
		c := a1
		if i%2 == 1 {
			c = a2
		}
		_, err := c.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
		if err == nil {
			allowed++
			continue
		}
		var cerr *connect.Error
		require.True(t, errors.As(err, &cerr) && cerr.Code() == connect.CodeResourceExhausted, "%v", err)
	}
	require.Less(t, allowed, 260, "replicas did not share the limit")
	require.Greater(t, allowed, 190)
}

// TestRedisOutage: with Redis stopped mid-test, calls keep succeeding from
// the in-process limiter, quickly; when Redis returns, shared limiting
// resumes by itself.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	rs := redistest.New(t)
	s := servertest.NewWith(t, &servertest.Opts{Redis: rs.Options()})
	a := s.SignUp(t)
	s.SetPlan(t, a.ID, "enterprise")
	f := s.Limiter.(*ratelimit.Failover)
	call := func() {
		t.Helper()
		_, err := a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
		require.NoError(t, err)
	}
	call()
	require.Positive(t, f.PrimaryAnswers())

	rs.Stop()
	// How many failed calls open the breaker depends on how many the last
	// second held and how long each waited for the dead Redis, so on how
	// busy the machine is: call until it opens. Every call must succeed
	// meanwhile, and the breaker must open well within the bound.
	deadline := time.Now().Add(30 * time.Second)
	for calls := 1; !f.Degraded(); calls++ {
		require.True(t, time.Now().Before(deadline), "breaker still closed after %d calls: primary=%d fallback=%d",
			calls, f.PrimaryAnswers(), f.Fallbacks())
		call()
	}
	require.Positive(t, f.Fallbacks())
	// Open, calls are answered locally, not by Redis.
	primary, fallbacks := f.PrimaryAnswers(), f.Fallbacks()
	call()
	require.Equal(t, primary, f.PrimaryAnswers())
	require.Equal(t, fallbacks+1, f.Fallbacks())
	require.True(t, f.Degraded())

	rs.Start()
	before := f.PrimaryAnswers()
	deadline = time.Now().Add(10 * time.Second)
	for f.PrimaryAnswers() == before {
		require.True(t, time.Now().Before(deadline), "never went back to Redis")
		call()
		time.Sleep(50 * time.Millisecond)
	}
	require.False(t, f.Degraded())
}

// TestAnonymousLimit: calls without a credential are limited per client
// address and procedure, so a script can neither create tenants nor guess
// passwords without end; tenant calls from the same address are not
// affected.
func TestAnonymousLimit(t *testing.T) {
	t.Parallel()
	s := servertest.NewWith(t, &servertest.Opts{AnonymousLimit: ratelimit.PerMinute(3, 3)})
	// SignUp: one CreateTenant, one VerifyEmail and one SignIn.
	a := s.SignUp(t)
	for i := range 2 {
		_, err := s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{
			Slug: fmt.Sprintf("%s-%d", a.Slug, i), Name: "x", OwnerEmail: fmt.Sprintf("x%d@x.example", i)}))
		require.NoError(t, err)
	}
	_, err := s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{Slug: "one-too-many", Name: "x", OwnerEmail: "x@x.example"}))
	cerr := apitest.RequireCode(t, err, connect.CodeResourceExhausted)
	require.Contains(t, cerr.Message(), "3 requests per minute")
	require.Positive(t, retryInfo(t, cerr).GetRetryDelay().AsDuration())
	_, err = a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)

	// Each public procedure has its own bucket: sign-in (password
	// guessing) gets the same 3 (SignUp used one), and so do the mail
	// and token RPCs; session upkeep gets ten times as many.
	anonAuth := s.As("", "", "").Auth
	for range 3 {
		_, err = anonAuth.RequestPasswordReset(ctx, req(&quartersv1.RequestPasswordResetRequest{Email: a.OwnerEmail}))
		require.NoError(t, err)
	}
	_, err = anonAuth.RequestPasswordReset(ctx, req(&quartersv1.RequestPasswordResetRequest{Email: a.OwnerEmail}))
	apitest.RequireCode(t, err, connect.CodeResourceExhausted)
	for range 3 {
		_, err = anonAuth.ResetPassword(ctx, req(&quartersv1.ResetPasswordRequest{Token: "qp_guess", NewPassword: "a new password"}))
		apitest.RequireCode(t, err, connect.CodeNotFound)
	}
	_, err = anonAuth.ResetPassword(ctx, req(&quartersv1.ResetPasswordRequest{Token: "qp_guess", NewPassword: "a new password"}))
	apitest.RequireCode(t, err, connect.CodeResourceExhausted)
	for range 2 {
		_, err = anonAuth.SignIn(ctx, req(&quartersv1.SignInRequest{Email: a.OwnerEmail, Password: "guess number n", Tenant: a.Slug}))
		apitest.RequireCode(t, err, connect.CodeUnauthenticated)
	}
	_, err = anonAuth.SignIn(ctx, req(&quartersv1.SignInRequest{Email: a.OwnerEmail, Password: servertest.OwnerPassword, Tenant: a.Slug}))
	apitest.RequireCode(t, err, connect.CodeResourceExhausted)
	rt := a.Owner.GetRefreshToken()
	for i := range 12 {
		resp, err := anonAuth.RefreshToken(ctx, req(&quartersv1.RefreshTokenRequest{RefreshToken: rt}))
		require.NoError(t, err, "refresh %d", i)
		rt = resp.Msg.GetSession().GetRefreshToken()
	}
}
