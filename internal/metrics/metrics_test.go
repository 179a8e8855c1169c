package metrics_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"connectrpc.com/connect"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/metrics"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// scrape reads the server's /metrics with the platform credential.
func scrape(t *testing.T, s *servertest.Server) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+metrics.Path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+s.PlatformKey)
	resp, err := s.HTTP.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return families
}

// value is the family's sample whose labels include labels (pairs), or 0
// when there is none.
func value(families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f, ok := families[name]
	if !ok {
		return 0
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return 0
}

// TestMetricsCountCallsPerProcedure: requests, errors by code and the
// latency histogram count each call under its procedure, and the caller's
// tenant under its own series.
func TestMetricsCountCallsPerProcedure(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	before := scrape(t, s)
	for i := range 3 {
		apitest.CreateProject(t, a, fmt.Sprintf("p%d", i))
	}
	_, err := a.Projects.GetProject(context.Background(), connect.NewRequest(&quartersv1.GetProjectRequest{Id: "0198a5e0-0000-7000-8000-000000000000"}))
	apitest.RequireCode(t, err, connect.CodeNotFound)

	after := scrape(t, s)
	create, get := quartersv1connect.ProjectServiceCreateProjectProcedure, quartersv1connect.ProjectServiceGetProjectProcedure
	require.Equal(t, 3.0, value(after, "quarters_rpc_requests_total", "procedure", create))
	require.Equal(t, 1.0, value(after, "quarters_rpc_requests_total", "procedure", get))
	require.Equal(t, 3.0, value(after, "quarters_rpc_duration_seconds", "procedure", create), "one latency sample per call")
	require.Equal(t, 1.0, value(after, "quarters_rpc_errors_total", "procedure", get, "code", "not_found"))
	require.Zero(t, value(after, "quarters_rpc_errors_total", "procedure", create, "code", "not_found"))
	require.Equal(t, 4.0, value(after, "quarters_tenant_requests_total", "tenant", a.ID)-
		value(before, "quarters_tenant_requests_total", "tenant", a.ID))

	// The calls' database cost is the tenant's: each insert returns its
	// row, each quota check counts one.
	delta := func(name string) float64 {
		return value(after, name, "tenant", a.ID) - value(before, name, "tenant", a.ID)
	}
	require.GreaterOrEqual(t, delta("quarters_tenant_db_rows_total"), 6.0)
	require.Positive(t, delta("quarters_tenant_db_seconds_total"))

	// Pool and cache figures are read from the live parts.
	require.Positive(t, value(after, "quarters_db_pool_total_conns"))
	require.Equal(t, 8.0, value(after, "quarters_db_pool_max_conns"), "servertest's pool size")
	require.Greater(t, value(after, "quarters_db_pool_acquires_total"), value(before, "quarters_db_pool_acquires_total"))
	require.GreaterOrEqual(t, value(after, "quarters_tenant_cache_hits_total")-value(before, "quarters_tenant_cache_hits_total"), 4.0,
		"each of the 4 calls found its tenant in memory")
	require.Equal(t, float64(s.TenantLoads()), value(after, "quarters_tenant_cache_loads_total"))
	require.Positive(t, value(after, "quarters_tenant_cache_misses_total"))
}

// TestMetricsCountRefusals: a rate-limit refusal and a quota refusal are
// each counted under their own metric, not the other's.
func TestMetricsCountRefusals(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	s.Exec(t, a.ID, `insert into tenant_overrides (tenant_id, max_projects) values ($1, 1)`, a.ID)
	apitest.CreateProject(t, a, "only")
	_, err := a.Projects.CreateProject(context.Background(), connect.NewRequest(&quartersv1.CreateProjectRequest{Name: "second"}))
	apitest.RequireCode(t, err, connect.CodeResourceExhausted)

	b := s.SignUp(t)
	s.Exec(t, b.ID, `insert into tenant_overrides (tenant_id, requests_per_minute, burst) values ($1, 1, 1)`, b.ID)
	list := quartersv1connect.ProjectServiceListProjectsProcedure
	require.NoError(t, apitest.ListProjects(b))
	apitest.RequireCode(t, apitest.ListProjects(b), connect.CodeResourceExhausted)

	m := scrape(t, s)
	require.Equal(t, 1.0, value(m, "quarters_quota_refusals_total", "quota", "max_projects"))
	require.Equal(t, 1.0, value(m, "quarters_rate_limit_refusals_total", "procedure", list))
	require.Zero(t, value(m, "quarters_rate_limit_refusals_total", "procedure", quartersv1connect.ProjectServiceCreateProjectProcedure),
		"a quota refusal is not a rate-limit refusal")
	require.Equal(t, 1.0, value(m, "quarters_rpc_errors_total", "procedure", list, "code", "resource_exhausted"))
}

// TestMetricsTenantCardinality: with K+10 tenants calling, /metrics has at
// most K+1 tenant series (the busiest K and other), and they account for
// every tenant call.
func TestMetricsTenantCardinality(t *testing.T) {
	t.Parallel()
	const k = 3
	s := servertest.NewWith(t, &servertest.Opts{MetricsTopTenants: k})
	var total float64
	busy := s.SignUp(t)
	s.Unthrottle(t, busy.ID)
	for range 30 {
		require.NoError(t, apitest.ListProjects(busy))
	}
	for range k + 9 {
		tn := s.SignUp(t)
		require.NoError(t, apitest.ListProjects(tn))
	}
	m := scrape(t, s)
	series := m["quarters_tenant_requests_total"].GetMetric()
	require.LessOrEqual(t, len(series), k+1)
	labels := map[string]bool{}
	for _, sm := range series {
		labels[sm.GetLabel()[0].GetValue()] = true
		total += sm.GetCounter().GetValue()
	}
	require.True(t, labels[metrics.Other], "the rest are counted under other")
	require.True(t, labels[busy.ID], "the busiest tenant keeps its own series")
	require.GreaterOrEqual(t, value(m, "quarters_tenant_requests_total", "tenant", busy.ID), 30.0)
	require.GreaterOrEqual(t, total, 30.0+k+9, "every tenant call is in some series")
}

// TestMetricsNeedPlatformKey: the series name tenants, so a server with a
// platform credential serves them only to its bearer.
func TestMetricsNeedPlatformKey(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + s.PlatformKey + "x", s.PlatformKey} {
		req, err := http.NewRequest(http.MethodGet, s.URL+metrics.Path, nil)
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := s.HTTP.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "Authorization %q", auth)
	}
	require.Contains(t, scrape(t, s), "quarters_db_pool_total_conns")
}
