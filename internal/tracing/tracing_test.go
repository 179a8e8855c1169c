package tracing_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/servertest"
	"github.com/quarters-dev/quarters/internal/tracing"
)

// captured starts a server whose spans are kept in memory.
func captured(t *testing.T) (*servertest.Server, *tracetest.InMemoryExporter) {
	t.Helper()
	exporter := tracetest.NewInMemoryExporter()
	// Synchronous export: a span is in the exporter as soon as it ends.
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	return servertest.NewWith(t, &servertest.Opts{TracerProvider: tp}), exporter
}

func attr(s tracetest.SpanStub, key string) (string, bool) {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.Emit(), true
		}
	}
	return "", false
}

// serverSpan is the one server span of the procedure.
func serverSpan(t *testing.T, spans tracetest.SpanStubs, procedure string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range spans {
		if s.SpanKind == trace.SpanKindServer && "/"+s.Name == procedure {
			found = append(found, s)
		}
	}
	require.Len(t, found, 1, "server spans of %s", procedure)
	return found[0]
}

// TestTraceHasTenantAndStatements: a call's server span names its tenant,
// and the statements it ran are spans under it, in the same trace.
func TestTraceHasTenantAndStatements(t *testing.T) {
	t.Parallel()
	s, exporter := captured(t)
	a := s.SignUp(t)
	// Sign-up is public: its span is there, without a tenant.
	signUp := serverSpan(t, exporter.GetSpans(), quartersv1connect.TenantServiceCreateTenantProcedure)
	_, hasTenant := attr(signUp, string(tracing.TenantAttribute))
	require.False(t, hasTenant, "no tenant is bound during sign-up")
	exporter.Reset()
	apitest.CreateProject(t, a, "traced")

	spans := exporter.GetSpans()
	server := serverSpan(t, spans, quartersv1connect.ProjectServiceCreateProjectProcedure)
	tenant, ok := attr(server, string(tracing.TenantAttribute))
	require.True(t, ok, "the server span has tenant.id: %v", server.Attributes)
	require.Equal(t, a.ID, tenant)

	var statements []string
	for _, sp := range spans {
		if sp.Parent.SpanID() == server.SpanContext.SpanID() && sp.SpanKind == trace.SpanKindClient {
			require.Equal(t, server.SpanContext.TraceID(), sp.SpanContext.TraceID())
			stmt, _ := attr(sp, "db.query.text")
			statements = append(statements, stmt)
		}
	}
	require.NotEmpty(t, statements, "database spans are children of the server span; spans: %d", len(spans))
	joined := ""
	for _, st := range statements {
		joined += st + "\n"
	}
	require.Contains(t, joined, "INSERT INTO projects", "the project's insert is traced")

	// Statements outside any call (flushes, job polling) start no traces.
	exporter.Reset()
	_, err := s.DB.Pool().Exec(context.Background(), "select 1")
	require.NoError(t, err)
	require.Empty(t, exporter.GetSpans(), "a statement outside a call is not traced")
}
