// Package tracing is Quarters' OpenTelemetry tracing: a server span per
// RPC (otelconnect) carrying the caller's tenant as tenant.id, a child
// span per SQL statement (otelpgx), exported over OTLP/HTTP when
// OTEL_EXPORTER_OTLP_ENDPOINT is set. Without it nothing is traced and
// nothing is added to the chain.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"
	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/quarters-dev/quarters/internal/cost"
	"github.com/quarters-dev/quarters/internal/intercept"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// EndpointEnv names the OTLP collector and turns export on.
const EndpointEnv = "OTEL_EXPORTER_OTLP_ENDPOINT"

// TenantAttribute is the server span attribute naming the call's tenant.
const TenantAttribute = attribute.Key("tenant.id")

// New returns a tracer provider exporting over OTLP/HTTP to endpoint (a
// URL such as http://collector:4318, the value of EndpointEnv), or nil
// for an empty endpoint (tracing off). The exporter also honours the
// other standard OTEL_EXPORTER_OTLP_* variables (headers, timeout). Shut
// it down after the server has stopped, to send the last spans.
func New(ctx context.Context, endpoint, version string) (*sdktrace.TracerProvider, error) {
	if endpoint == "" {
		return nil, nil
	}
	exporter, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter (%s): %w", EndpointEnv, err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName("quarters"), semconv.ServiceVersion(version)))
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res)), nil
}

// Interceptors are the tracing interceptors: the first opens each call's
// server span and goes outermost, so the span covers the whole chain; the
// second names the tenant on it and goes right after the tenant is bound.
func Interceptors(tp trace.TracerProvider) (outer, tenant connect.Interceptor, err error) {
	// No metrics from otelconnect: /metrics (package metrics) has them.
	// Remote parents are linked rather than adopted (the default): the
	// API is public, and a caller must not place spans in our traces.
	i, err := otelconnect.NewInterceptor(otelconnect.WithTracerProvider(tp), otelconnect.WithoutMetrics())
	if err != nil {
		return nil, nil, fmt.Errorf("otelconnect: %w", err)
	}
	return i, intercept.Before(func(ctx context.Context, _ connect.Spec) (context.Context, error) {
		if t, ok := tenancy.FromContext(ctx); ok {
			trace.SpanFromContext(ctx).SetAttributes(TenantAttribute.String(t.ID.String()))
		}
		return ctx, nil
	}), nil
}

// ConfigurePool sets the pool's statement tracers: cost.Tracer always
// (the per-tenant database time and rows of /metrics), and, with tp, a
// span per statement run for a traced call, a child of the call's span.
// Statements outside any span (the job queue's polling, the periodic
// flushes) start no traces, or they would be a root trace every second:
// otelpgx starts spans only under a recording one
// (TestTraceHasTenantAndStatements checks it). Query parameters are not
// recorded (they hold tenant data); statements are.
func ConfigurePool(cfg *pgxpool.Config, tp trace.TracerProvider) {
	if tp == nil {
		cfg.ConnConfig.Tracer = cost.Tracer{}
		return
	}
	cfg.ConnConfig.Tracer = multitracer.New(cost.Tracer{}, otelpgx.NewTracer(otelpgx.WithTracerProvider(tp)))
}

// Shutdown sends the spans still buffered, waiting at most timeout.
func Shutdown(tp *sdktrace.TracerProvider, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("trace export shutdown: %w", err)
	}
	return nil
}
