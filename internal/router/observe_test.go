package router_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// syncBuffer is a log sink the server's goroutines can share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		out = append(out, m)
	}
	return out
}

// TestCallLog: one JSON line per call with request id, procedure, tenant,
// code and duration; rejected credentials are logged too; secrets never.
func TestCallLog(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	s := servertest.NewWith(t, &servertest.Opts{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	a := s.SignUp(t)
	_, err := a.Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: "00000000-0000-4000-8000-000000000000"}))
	apitest.RequireCode(t, err, connect.CodeNotFound)
	_, err = s.As(a.ID, a.Slug, "qk_wrong").Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)

	var calls []map[string]any // the lines of calls, not River's or the mailbox's
	for _, l := range buf.lines(t) {
		if l["msg"] == "call" {
			calls = append(calls, l)
		}
	}
	// SignUp: CreateTenant, VerifyEmail (the mailed link), SignIn.
	require.Len(t, calls, 5)
	for _, c := range calls {
		require.Regexp(t, `^[0-9a-f]{24}$`, c["request_id"])
		require.Contains(t, c, "duration_ms")
	}
	require.Equal(t, "/quarters.v1.TenantService/CreateTenant", calls[0]["procedure"])
	require.Equal(t, "ok", calls[0]["code"])
	require.Equal(t, "/quarters.v1.AuthService/VerifyEmail", calls[1]["procedure"])
	require.Equal(t, "/quarters.v1.ProjectService/GetProject", calls[3]["procedure"])
	require.Equal(t, "not_found", calls[3]["code"])
	require.Equal(t, a.ID, calls[3]["tenant_id"])
	require.Equal(t, "unauthenticated", calls[4]["code"])
	require.NotContains(t, calls[4], "tenant_id")
	require.NotContains(t, buf.b.String(), a.Key, "an API key reached the log")
}

// TestRequestID: a sane incoming X-Request-Id is kept and echoed, a
// hostile one replaced.
func TestRequestID(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	for in, keep := range map[string]bool{"abc-123.X_y": true, "bad id with spaces": false, strings.Repeat("a", 65): false} {
		r, err := http.NewRequest(http.MethodGet, s.URL+"/healthz", nil)
		require.NoError(t, err)
		r.Header.Set("X-Request-Id", in)
		resp, err := s.HTTP.Do(r)
		require.NoError(t, err)
		resp.Body.Close()
		if keep {
			require.Equal(t, in, resp.Header.Get("X-Request-Id"))
		} else {
			require.Regexp(t, `^[0-9a-f]{24}$`, resp.Header.Get("X-Request-Id"))
		}
	}
}

// TestGRPCHealth: the standard health service answers (here over Connect
// JSON, the same handler grpc_health_probe reaches over gRPC).
func TestGRPCHealth(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	for service, want := range map[string]string{"": `"SERVING_STATUS_SERVING"`, "quarters.v1.ProjectService": `"SERVING_STATUS_SERVING"`, "nope.v1.X": "not_found"} {
		resp, err := s.HTTP.Post(s.URL+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader(`{"service":"`+service+`"}`))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Contains(t, string(body), want, "service %q", service)
	}
}
