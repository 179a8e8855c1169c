package router_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/router"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// TestProtocols: the same API over gRPC (h2c), gRPC-Web and Connect GET.
func TestProtocols(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	p := apitest.CreateProject(t, a, "multi")

	for name, opt := range map[string]connect.ClientOption{
		"grpc":     connect.WithGRPC(),
		"grpc-web": connect.WithGRPCWeb(),
		"get":      connect.WithHTTPGet(),
	} {
		t.Run(name, func(t *testing.T) {
			c := s.As(a.ID, a.Slug, a.Key, opt)
			got, err := c.Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: p.GetId()}))
			require.NoError(t, err)
			require.Equal(t, "multi", got.Msg.GetProject().GetName())
			// Errors keep their codes across protocols.
			_, err = c.Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: "00000000-0000-4000-8000-000000000000"}))
			apitest.RequireCode(t, err, connect.CodeNotFound)
			_, err = s.As(a.ID, a.Slug, "", opt).Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: p.GetId()}))
			apitest.RequireCode(t, err, connect.CodeUnauthenticated)
		})
	}

	// A plain GET with the message in the query string, as curl sends it.
	q := url.Values{"encoding": {"json"}, "message": {`{"id":"` + p.GetId() + `"}`}}
	r, err := http.NewRequest(http.MethodGet, s.URL+"/quarters.v1.ProjectService/GetProject?"+q.Encode(), nil)
	require.NoError(t, err)
	r.Header.Set("Authorization", "Bearer "+a.Key)
	resp, err := s.HTTP.Do(r)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var out struct {
		Project struct{ ID, Name string } `json:"project"`
	}
	require.NoError(t, json.Unmarshal(body, &out))
	require.Equal(t, p.GetId(), out.Project.ID)
	require.Equal(t, "multi", out.Project.Name)
	require.NotEmpty(t, resp.Header.Get("X-Request-Id"))
}

// TestReflection: grpcurl and buf curl can discover the services.
func TestReflection(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	stream := grpcreflect.NewClient(s.H2C, s.URL, connect.WithGRPC()).NewStream(ctx)
	defer stream.Close()
	names, err := stream.ListServices()
	require.NoError(t, err)
	var got []string
	for _, n := range names {
		got = append(got, string(n))
	}
	var want []string
	for _, svc := range router.Services() {
		want = append(want, string(svc.FullName()))
	}
	require.GreaterOrEqual(t, len(want), 5)
	want = append(want, "grpc.health.v1.Health")
	require.ElementsMatch(t, want, got)

	// Health is described, not just named: grpcurl can build its requests.
	fd, err := stream.FileContainingSymbol("grpc.health.v1.Health")
	require.NoError(t, err)
	require.NotEmpty(t, fd)
	require.Equal(t, "grpc.health.v1", fd[0].GetPackage())
	var methods []string
	for _, svc := range fd[0].GetService() {
		for _, m := range svc.GetMethod() {
			methods = append(methods, svc.GetName()+"/"+m.GetName())
		}
	}
	require.Contains(t, methods, "Health/Check")
}
