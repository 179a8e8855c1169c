// Package metrics is Quarters' Prometheus surface: per-procedure call
// counts, errors by Connect code and latency; rate-limit and quota
// refusals, told apart by their error details; the database pool's and the
// tenant cache's figures, read when scraped; and per-tenant traffic with
// bounded cardinality (the top K tenants plus one "other" series).
//
// Each server has its own registry, not Prometheus' global one, so tests
// can run many servers in one process and read each one's figures.
package metrics

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	"github.com/quarters-dev/quarters/internal/cost"
	"github.com/quarters-dev/quarters/internal/tenancy"
	"github.com/quarters-dev/quarters/internal/tenant"
)

// DefaultTopTenants is how many tenants get series of their own by default.
const DefaultTopTenants = 20

// Path is where the metrics are served.
const Path = "/metrics"

// Params are New's inputs. Pool and Tenants may be nil (their figures are
// then not exported).
type Params struct {
	Pool    *pgxpool.Pool
	Tenants *tenant.Cache
	// TopTenants is K, how many tenants get series of their own (default
	// DefaultTopTenants).
	TopTenants int
}

// Metrics holds one server's metrics.
type Metrics struct {
	registry  *prometheus.Registry
	requests  *prometheus.CounterVec
	errors    *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	rateLimit *prometheus.CounterVec
	quota     *prometheus.CounterVec
	tenants   *TopK

	// procs caches each procedure's children of requests and duration:
	// WithLabelValues hashes and allocates on every call.
	procsMu sync.RWMutex
	procs   map[string]procMetrics
}

type procMetrics struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func (m *Metrics) proc(procedure string) procMetrics {
	m.procsMu.RLock()
	p, ok := m.procs[procedure]
	m.procsMu.RUnlock()
	if ok {
		return p
	}
	// Procedures are the served RPCs only (Connect routes nothing else
	// here), so the map stays small.
	p = procMetrics{requests: m.requests.WithLabelValues(procedure), duration: m.duration.WithLabelValues(procedure)}
	m.procsMu.Lock()
	m.procs[procedure] = p
	m.procsMu.Unlock()
	return p
}

// New registers every metric on a fresh registry.
func New(p Params) *Metrics {
	if p.TopTenants <= 0 {
		p.TopTenants = DefaultTopTenants
	}
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quarters_rpc_requests_total",
			Help: "RPCs handled, by procedure (calls refused before the interceptors, for a bad credential, are not counted).",
		}, []string{"procedure"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quarters_rpc_errors_total",
			Help: "RPCs that failed, by procedure and Connect code.",
		}, []string{"procedure", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "quarters_rpc_duration_seconds",
			Help:    "RPC latency in the server, by procedure.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"procedure"}),
		rateLimit: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quarters_rate_limit_refusals_total",
			Help: "RPCs refused by a rate limit, by procedure.",
		}, []string{"procedure"}),
		quota: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quarters_quota_refusals_total",
			Help: "RPCs refused by a plan quota, by quota (max_projects, max_api_calls_per_month, ...).",
		}, []string{"quota"}),
		tenants: NewTopK(p.TopTenants),
		procs:   map[string]procMetrics{},
	}
	m.registry.MustRegister(m.requests, m.errors, m.duration, m.rateLimit, m.quota,
		tenantCollector{m.tenants},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if p.Pool != nil {
		m.registry.MustRegister(poolCollector{p.Pool})
	}
	if p.Tenants != nil {
		c := p.Tenants
		m.registry.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "quarters_tenant_cache_hits_total", Help: "Tenant records served from this process's memory.",
			}, func() float64 { return float64(c.Stats().Hits) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "quarters_tenant_cache_misses_total", Help: "Tenant records not in this process's memory (read from Redis or the database).",
			}, func() float64 { return float64(c.Stats().Misses) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "quarters_tenant_cache_loads_total", Help: "Tenant records read from the database.",
			}, func() float64 { return float64(c.Stats().Loads) }),
		)
	}
	return m
}

// Registry is where the metrics are registered, for other parts to add
// theirs.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the metrics in Prometheus' text format. When token is
// set, a scrape must send it as "Authorization: Bearer <token>": the
// series name the busiest tenants.
func (m *Metrics) Handler(token string) http.Handler {
	h := promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="quarters metrics"`)
			http.Error(w, "metrics need the platform credential: Authorization: Bearer <QUARTERS_PLATFORM_KEY>", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Interceptor counts and times every call. Put it outside the error
// mapping (observe), so it sees the codes clients see.
func (m *Metrics) Interceptor() connect.Interceptor { return interceptor{m} }

// TenantInterceptor counts each call under its tenant, with the database
// time and rows its statements took (package cost; the pool needs
// cost.Tracer). Put it after the tenant is bound; calls without a tenant
// (sign-up) are not counted.
func (m *Metrics) TenantInterceptor() connect.Interceptor { return tenantInterceptor{m} }

type tenantInterceptor struct{ m *Metrics }

func (i tenantInterceptor) record(ctx context.Context, meter *cost.Meter) {
	if t, ok := tenancy.FromContext(ctx); ok {
		d, rows := meter.Totals()
		i.m.tenants.Add(t.ID, Counts{DBSeconds: d.Seconds(), DBRows: float64(rows)})
	}
}

func (i tenantInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		if meter := cost.FromContext(ctx); meter != nil {
			// metering's cost interceptor, further out, measures the
			// call: share its meter (one allocation per call, not two).
			res, err := next(ctx, req)
			i.record(ctx, meter)
			return res, err
		}
		meter := cost.WithMeter(ctx)
		res, err := next(meter, req)
		i.record(ctx, meter)
		return res, err
	}
}

func (i tenantInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i tenantInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if meter := cost.FromContext(ctx); meter != nil {
			err := next(ctx, conn)
			i.record(ctx, meter)
			return err
		}
		meter := cost.WithMeter(ctx)
		err := next(meter, conn)
		i.record(ctx, meter)
		return err
	}
}

func (m *Metrics) observe(procedure string, start time.Time, err error) {
	pm := m.proc(procedure)
	pm.requests.Inc()
	pm.duration.Observe(time.Since(start).Seconds())
	if err == nil {
		return
	}
	code := connect.CodeOf(err)
	m.errors.WithLabelValues(procedure, code.String()).Inc()
	if code != connect.CodeResourceExhausted {
		return
	}
	// Both refusals are RESOURCE_EXHAUSTED; a quota names itself in a
	// QuotaFailure, a rate limit says when to retry in a RetryInfo.
	var cerr *connect.Error
	if !errors.As(err, &cerr) {
		return
	}
	retry := false
	for _, d := range cerr.Details() {
		v, err := d.Value()
		if err != nil {
			continue
		}
		switch v := v.(type) {
		case *errdetails.QuotaFailure:
			for _, q := range v.GetViolations() {
				m.quota.WithLabelValues(q.GetQuotaId()).Inc()
			}
			return
		case *errdetails.RetryInfo:
			retry = true
		}
	}
	if retry {
		m.rateLimit.WithLabelValues(procedure).Inc()
	}
}

type interceptor struct{ m *Metrics }

func (i interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		start := time.Now()
		res, err := next(ctx, req)
		i.m.observe(req.Spec().Procedure, start, err)
		return res, err
	}
}

func (i interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		err := next(ctx, conn)
		i.m.observe(conn.Spec().Procedure, start, err)
		return err
	}
}

// tenantCollector exports TopK's counts when scraped.
type tenantCollector struct{ t *TopK }

var (
	tenantRequests = prometheus.NewDesc("quarters_tenant_requests_total",
		"RPCs per tenant: the busiest tenants (QUARTERS_METRICS_TOP_TENANTS) under their id, every other tenant under \"other\".",
		[]string{"tenant"}, nil)
	tenantDBSeconds = prometheus.NewDesc("quarters_tenant_db_seconds_total",
		"Database time of the tenant's RPCs' statements (same tenants as quarters_tenant_requests_total).",
		[]string{"tenant"}, nil)
	tenantDBRows = prometheus.NewDesc("quarters_tenant_db_rows_total",
		"Rows returned or changed by the tenant's RPCs' statements (same tenants as quarters_tenant_requests_total).",
		[]string{"tenant"}, nil)
)

func (c tenantCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- tenantRequests
	ch <- tenantDBSeconds
	ch <- tenantDBRows
}

func (c tenantCollector) Collect(ch chan<- prometheus.Metric) {
	tenants, other := c.t.Snapshot()
	emit := func(label string, n Counts) {
		ch <- prometheus.MustNewConstMetric(tenantRequests, prometheus.CounterValue, n.Calls, label)
		ch <- prometheus.MustNewConstMetric(tenantDBSeconds, prometheus.CounterValue, n.DBSeconds, label)
		ch <- prometheus.MustNewConstMetric(tenantDBRows, prometheus.CounterValue, n.DBRows, label)
	}
	for id, n := range tenants {
		emit(id.String(), n)
	}
	emit(Other, other)
}

// poolCollector exports the database pool's statistics when scraped.
type poolCollector struct{ pool *pgxpool.Pool }

var (
	poolAcquired     = prometheus.NewDesc("quarters_db_pool_acquired_conns", "Connections in use.", nil, nil)
	poolIdle         = prometheus.NewDesc("quarters_db_pool_idle_conns", "Idle connections.", nil, nil)
	poolTotal        = prometheus.NewDesc("quarters_db_pool_total_conns", "Open connections (in use, idle, being opened).", nil, nil)
	poolMax          = prometheus.NewDesc("quarters_db_pool_max_conns", "The pool's size limit.", nil, nil)
	poolAcquires     = prometheus.NewDesc("quarters_db_pool_acquires_total", "Connections acquired.", nil, nil)
	poolWaits        = prometheus.NewDesc("quarters_db_pool_waits_total", "Acquires that had to wait for a connection.", nil, nil)
	poolWaitDuration = prometheus.NewDesc("quarters_db_pool_wait_seconds_total", "Time spent waiting for a connection.", nil, nil)
)

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolAcquired, poolIdle, poolTotal, poolMax, poolAcquires, poolWaits, poolWaitDuration} {
		ch <- d
	}
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	ch <- prometheus.MustNewConstMetric(poolAcquired, prometheus.GaugeValue, float64(s.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(poolIdle, prometheus.GaugeValue, float64(s.IdleConns()))
	ch <- prometheus.MustNewConstMetric(poolTotal, prometheus.GaugeValue, float64(s.TotalConns()))
	ch <- prometheus.MustNewConstMetric(poolMax, prometheus.GaugeValue, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(poolAcquires, prometheus.CounterValue, float64(s.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolWaits, prometheus.CounterValue, float64(s.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolWaitDuration, prometheus.CounterValue, s.EmptyAcquireWaitTime().Seconds())
}
