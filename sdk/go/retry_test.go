package quarters_test

// Unit tests of the retry policy's decisions against a tiny Connect
// handler whose answers each test scripts.

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	quarters "github.com/quarters-dev/quarters/sdk/go"
)

// fake answers CreateProject (side effects) and ListProjects (none) with
// answer(n), n counting calls from 1; nil answers success.
type fake struct {
	quartersv1connect.UnimplementedProjectServiceHandler
	answer func(n int64) error
	calls  atomic.Int64
	proto  atomic.Int64 // HTTP major version of the last request
}

func (f *fake) CreateProject(context.Context, *connect.Request[quartersv1.CreateProjectRequest]) (*connect.Response[quartersv1.CreateProjectResponse], error) {
	if err := f.answer(f.calls.Add(1)); err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.CreateProjectResponse{Project: &quartersv1.Project{Name: "made"}}), nil
}

func (f *fake) ListProjects(context.Context, *connect.Request[quartersv1.ListProjectsRequest]) (*connect.Response[quartersv1.ListProjectsResponse], error) {
	if err := f.answer(f.calls.Add(1)); err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.ListProjectsResponse{}), nil
}

// serve starts the fake over HTTP/1.1 and h2c and returns its URL.
func serve(t *testing.T, answer func(n int64) error) (*fake, string) {
	t.Helper()
	f := &fake{answer: answer}
	path, h := quartersv1connect.NewProjectServiceHandler(f)
	mux := http.NewServeMux()
	mux.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.proto.Store(int64(r.ProtoMajor))
		h.ServeHTTP(w, r)
	}))
	ts := httptest.NewUnstartedServer(mux)
	ts.Config.Protocols = new(http.Protocols)
	ts.Config.Protocols.SetHTTP1(true)
	ts.Config.Protocols.SetUnencryptedHTTP2(true)
	ts.Start()
	t.Cleanup(ts.Close)
	return f, ts.URL
}

// fast retries quickly, so tests of backoff take milliseconds.
var ctx = context.Background()

func req[T any](m *T) *connect.Request[T] { return connect.NewRequest(m) }

var fast = quarters.WithRetry(quarters.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Second})

func withDetail(code connect.Code, details ...proto.Message) *connect.Error {
	err := connect.NewError(code, errors.New("scripted"))
	for _, d := range details {
		ed, derr := connect.NewErrorDetail(d)
		if derr != nil {
			panic(derr)
		}
		err.AddDetail(ed)
	}
	return err
}

func rateLimited(d time.Duration) *connect.Error {
	return withDetail(connect.CodeResourceExhausted, &errdetails.RetryInfo{RetryDelay: durationpb.New(d)})
}

// failing answers err for the first n calls, then success.
func failing(n int64, err error) func(int64) error {
	return func(call int64) error {
		if call <= n {
			return err
		}
		return nil
	}
}

func create(c *quarters.Client) error {
	_, err := c.Projects.CreateProject(context.Background(), req(&quartersv1.CreateProjectRequest{Name: "x"}))
	return err
}

func list(c *quarters.Client) error {
	return listCtx(context.Background(), c)
}

func listCtx(ctx context.Context, c *quarters.Client) error {
	_, err := c.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	return err
}

func TestRetryDecisions(t *testing.T) {
	t.Parallel()
	quota := &errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{QuotaId: "max_projects", QuotaValue: 5}}}
	retryAfter := func(v string) *connect.Error {
		err := connect.NewError(connect.CodeResourceExhausted, errors.New("slow down"))
		err.Meta().Set("Retry-After", v)
		return err
	}
	for _, c := range []struct {
		name  string
		err   error
		call  func(*quarters.Client) error
		calls int64 // how many reach the server
		ok    bool  // whether the call finally succeeds
	}{
		{"rate limit on a create", rateLimited(10 * time.Millisecond), create, 2, true},
		{"rate limit on a list", rateLimited(10 * time.Millisecond), list, 2, true},
		{"rate limit by Retry-After only", retryAfter("1"), create, 2, true},
		{"rate limit longer than MaxBackoff", rateLimited(3 * time.Second), list, 1, false},
		{"quota failure, even with a wait", withDetail(connect.CodeResourceExhausted, quota, &errdetails.RetryInfo{RetryDelay: durationpb.New(time.Millisecond)}), list, 1, false},
		{"resource_exhausted without a wait", connect.NewError(connect.CodeResourceExhausted, errors.New("too big")), list, 1, false},
		{"unavailable on a list", connect.NewError(connect.CodeUnavailable, errors.New("down")), list, 2, true},
		{"unavailable on a create", connect.NewError(connect.CodeUnavailable, errors.New("down")), create, 1, false},
		{"internal", connect.NewError(connect.CodeInternal, errors.New("bug")), list, 1, false},
		{"not found", connect.NewError(connect.CodeNotFound, errors.New("gone")), list, 1, false},
		{"unauthenticated", connect.NewError(connect.CodeUnauthenticated, errors.New("who")), list, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f, url := serve(t, failing(1, c.err))
			err := c.call(quarters.NewClient(url, fast))
			require.Equal(t, c.calls, f.calls.Load())
			if c.ok {
				require.NoError(t, err)
			} else {
				require.Equal(t, connect.CodeOf(c.err), connect.CodeOf(err), "%v", err)
			}
		})
	}
}

func TestRetryGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	f, url := serve(t, failing(100, connect.NewError(connect.CodeUnavailable, errors.New("down"))))
	err := list(quarters.NewClient(url, fast))
	require.Equal(t, connect.CodeUnavailable, connect.CodeOf(err))
	require.EqualValues(t, 3, f.calls.Load())

	f, url = serve(t, failing(100, rateLimited(time.Millisecond)))
	_, ok := quarters.RateLimited(create(quarters.NewClient(url, quarters.WithRetry(quarters.RetryPolicy{MaxAttempts: 4}))))
	require.True(t, ok)
	require.EqualValues(t, 4, f.calls.Load())
}

func TestWithoutRetry(t *testing.T) {
	t.Parallel()
	f, url := serve(t, failing(1, rateLimited(time.Millisecond)))
	wait, ok := quarters.RateLimited(list(quarters.NewClient(url, quarters.WithoutRetry())))
	require.True(t, ok)
	require.Equal(t, time.Millisecond, wait)
	require.EqualValues(t, 1, f.calls.Load())
}

// TestRetryWaitsWhatTheServerSaid: RetryInfo wins over Retry-After, and
// the SDK waits at least that long.
func TestRetryWaitsWhatTheServerSaid(t *testing.T) {
	t.Parallel()
	refusal := rateLimited(150 * time.Millisecond)
	refusal.Meta().Set("Retry-After", "1")
	f, url := serve(t, failing(1, refusal))
	start := time.Now()
	require.NoError(t, create(quarters.NewClient(url, fast)))
	elapsed := time.Since(start)
	require.EqualValues(t, 2, f.calls.Load())
	require.GreaterOrEqual(t, elapsed, 150*time.Millisecond)
	require.Less(t, elapsed, time.Second, "RetryInfo is preferred to Retry-After (generous bound)")
}

// attempts counts the requests a client tried to send.
type attempts struct {
	base http.RoundTripper
	n    atomic.Int64
}

func (a *attempts) RoundTrip(r *http.Request) (*http.Response, error) {
	a.n.Add(1)
	return a.base.RoundTrip(r)
}

// TestRetryNotSent: a create whose connection was refused is retried, as
// the request never left the client.
func TestRetryNotSent(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now
	transport := &attempts{base: http.DefaultTransport}
	err = create(quarters.NewClient(url, fast, quarters.WithHTTPClient(&http.Client{Transport: transport})))
	require.Equal(t, connect.CodeUnavailable, connect.CodeOf(err), "%v", err)
	require.EqualValues(t, 3, transport.n.Load())
}

func TestRetryStopsWithContext(t *testing.T) {
	t.Parallel()
	long := quarters.WithRetry(quarters.RetryPolicy{MaxAttempts: 3, MaxBackoff: time.Minute})

	// Cancelled while waiting: the wait ends at once.
	f, url := serve(t, failing(1, rateLimited(30*time.Second)))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	err := listCtx(ctx, quarters.NewClient(url, long))
	require.Less(t, time.Since(start), 10*time.Second)
	require.Equal(t, connect.CodeCanceled, connect.CodeOf(err), "%v", err)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "scripted", "names what it was waiting out")
	require.EqualValues(t, 1, f.calls.Load())

	// A deadline before the wait ends: the refusal comes back at once.
	f, url = serve(t, failing(1, rateLimited(30*time.Second)))
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start = time.Now()
	err = listCtx(ctx, quarters.NewClient(url, long))
	require.Less(t, time.Since(start), 5*time.Second)
	wait, ok := quarters.RateLimited(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, 30*time.Second, wait)
	require.EqualValues(t, 1, f.calls.Load())
}

// TestRetryAsksTokenSourceEachAttempt: a retried call gets a fresh token.
func TestRetryAsksTokenSourceEachAttempt(t *testing.T) {
	t.Parallel()
	_, url := serve(t, failing(2, rateLimited(time.Millisecond)))
	var calls atomic.Int64
	c := quarters.NewClient(url, fast, quarters.WithTokenSource(func(context.Context) (string, error) {
		calls.Add(1)
		return "t", nil
	}))
	require.NoError(t, list(c))
	require.EqualValues(t, 3, calls.Load())
}

// TestDefaultTransport: gRPC over http:// gets HTTP/2 without TLS by
// default; Connect and gRPC-Web keep HTTP/1.1.
func TestDefaultTransport(t *testing.T) {
	t.Parallel()
	for p, major := range map[quarters.Protocol]int64{quarters.Connect: 1, quarters.GRPC: 2, quarters.GRPCWeb: 1} {
		f, url := serve(t, failing(0, nil))
		require.NoError(t, list(quarters.NewClient(url, quarters.WithProtocol(p))), p)
		require.Equal(t, major, f.proto.Load(), p)
	}
}
