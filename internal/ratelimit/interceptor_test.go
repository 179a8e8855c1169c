package ratelimit_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/quarters-dev/quarters/internal/ratelimit"
	"github.com/quarters-dev/quarters/internal/redistest"
)

const (
	procPing     = "/test.v1.TestService/Ping"     // succeeds
	procNotFound = "/test.v1.TestService/NotFound" // fails with a *connect.Error
	procBroken   = "/test.v1.TestService/Broken"   // fails with a plain error
	procWatch    = "/test.v1.TestService/Watch"    // server stream of two messages

	tenantHeader = "X-Test-Tenant"
	upgradeURL   = "https://quarters.dev/billing"
)

// freePlan is a small limit whose numbers are easy to check: one request
// every 6s, five at once.
var freePlan = ratelimit.PerMinute(10, 5)

type tenantKey struct{}

// withTenant stands in for the authentication middleware: it puts the
// caller's tenant, named by a header, into the context.
func withTenant(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get(tenantHeader); id != "" {
			r = r.WithContext(context.WithValue(r.Context(), tenantKey{}, id))
		}
		next.ServeHTTP(w, r)
	})
}

func policyFromContext(ctx context.Context, _ string) (ratelimit.Policy, bool) {
	id, ok := ctx.Value(tenantKey{}).(string)
	if !ok {
		return ratelimit.Policy{}, false
	}
	return ratelimit.Policy{Key: "tenant:" + id, Limit: freePlan, Plan: "free"}, true
}

// startServer serves the test procedures over HTTP/2 with TLS (gRPC needs
// HTTP/2), behind an interceptor built from p, and returns the base URL and
// a client for it.
func startServer(t *testing.T, p ratelimit.InterceptorParams) (string, *http.Client) {
	t.Helper()
	if p.PolicyFunc == nil {
		p.PolicyFunc = policyFromContext
	}
	p.UpgradeURL = upgradeURL
	opts := connect.WithInterceptors(ratelimit.NewInterceptor(p))
	empty := func(context.Context, *connect.Request[emptypb.Empty]) (*connect.Response[emptypb.Empty], error) {
		return connect.NewResponse(&emptypb.Empty{}), nil
	}
	mux := http.NewServeMux()
	mux.Handle(procPing, connect.NewUnaryHandler(procPing, empty, opts))
	mux.Handle(procNotFound, connect.NewUnaryHandler(procNotFound,
		func(context.Context, *connect.Request[emptypb.Empty]) (*connect.Response[emptypb.Empty], error) {
			return nil, connect.NewError(connect.CodeNotFound, errors.New("no such thing"))
		}, opts))
	mux.Handle(procBroken, connect.NewUnaryHandler(procBroken,
		func(context.Context, *connect.Request[emptypb.Empty]) (*connect.Response[emptypb.Empty], error) {
			return nil, errors.New("database is down")
		}, opts))
	mux.Handle(procWatch, connect.NewServerStreamHandler(procWatch,
		func(_ context.Context, _ *connect.Request[emptypb.Empty], s *connect.ServerStream[emptypb.Empty]) error {
			for range 2 {
				if err := s.Send(&emptypb.Empty{}); err != nil {
					return err
				}
			}
			return nil
		}, opts))
	srv := httptest.NewUnstartedServer(withTenant(mux))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, srv.Client()
}

// redisLimiter is the limiter of most interceptor tests: Redis itself, not
// a Failover, so that a slow moment can't move a decision to Local.
func redisLimiter(t *testing.T) ratelimit.Limiter {
	t.Helper()
	return ratelimit.NewRedis(redistest.New(t).Client())
}

var protocols = []struct {
	name string
	opts []connect.ClientOption
}{
	{"connect", nil},
	{"grpc", []connect.ClientOption{connect.WithGRPC()}},
	{"grpcweb", []connect.ClientOption{connect.WithGRPCWeb()}},
}

func call(ctx context.Context, t *testing.T, base string, hc *http.Client, proc, tenant string, opts ...connect.ClientOption) (*connect.Response[emptypb.Empty], error) {
	t.Helper()
	c := connect.NewClient[emptypb.Empty, emptypb.Empty](hc, base+proc, opts...)
	req := connect.NewRequest(&emptypb.Empty{})
	if tenant != "" {
		req.Header().Set(tenantHeader, tenant)
	}
	return c.CallUnary(ctx, req)
}

// requireState checks the rate-limit headers of an allowed call.
func requireState(t *testing.T, h http.Header, remaining int, reset int) {
	t.Helper()
	require.Equal(t, `"default";q=10;w=60`, h.Get("RateLimit-Policy"))
	require.Equal(t, `"default";r=`+strconv.Itoa(remaining)+`;t=`+strconv.Itoa(reset), h.Get("RateLimit"))
	require.Equal(t, "10", h.Get("X-RateLimit-Limit"))
	require.Equal(t, strconv.Itoa(remaining), h.Get("X-RateLimit-Remaining"))
	require.Equal(t, strconv.Itoa(reset), h.Get("X-RateLimit-Reset"))
	require.Empty(t, h.Get("Retry-After"))
}

// requireOverLimit checks everything a refused call carries, and that
// Retry-After and RetryInfo agree.
func requireOverLimit(t *testing.T, err error) {
	t.Helper()
	require.Equal(t, connect.CodeResourceExhausted, connect.CodeOf(err), "%v", err)
	var cerr *connect.Error
	require.True(t, errors.As(err, &cerr))
	require.Equal(t,
		`rate limit of 10 requests per minute for plan "free" exceeded; retry in 6s or upgrade at `+upgradeURL,
		cerr.Message())

	var retry *errdetails.RetryInfo
	for _, d := range cerr.Details() {
		v, derr := d.Value()
		require.NoError(t, derr)
		if r, ok := v.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	require.NotNil(t, retry, "RetryInfo detail")
	delay := retry.GetRetryDelay().AsDuration()
	// Six seconds after a burst of five, less the time the calls took.
	require.InDelta(t, 6*time.Second, delay, float64(time.Second))

	h := cerr.Meta()
	require.Equal(t, strconv.Itoa(int(math.Ceil(delay.Seconds()))), h.Get("Retry-After"))
	require.Equal(t, "6", h.Get("Retry-After"))
	require.Equal(t, "0", h.Get("X-RateLimit-Remaining"))
	require.Equal(t, `"default";r=0;t=6`, h.Get("RateLimit"), "t is the Retry-After when refused")
	require.Equal(t, `"default";q=10;w=60`, h.Get("RateLimit-Policy"))
	require.Equal(t, "10", h.Get("X-RateLimit-Limit"))
	require.Equal(t, "30", h.Get("X-RateLimit-Reset"), "a full burst drains in 5 × 6s")
}

func TestInterceptorUnary(t *testing.T) {
	t.Parallel()
	base, hc := startServer(t, ratelimit.InterceptorParams{Limiter: redisLimiter(t)})
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			for i := range freePlan.Burst {
				res, err := call(ctx, t, base, hc, procPing, t.Name(), p.opts...)
				require.NoError(t, err, "call %d", i)
				// Each call moves the bucket's end 6s further out.
				requireState(t, res.Header(), freePlan.Burst-1-i, 6*(i+1))
			}
			_, err := call(ctx, t, base, hc, procPing, t.Name(), p.opts...)
			requireOverLimit(t, err)

			_, err = call(ctx, t, base, hc, procPing, t.Name()+"-other", p.opts...)
			require.NoError(t, err, "another tenant is not limited")
		})
	}
}

// TestInterceptorHTTPStatus checks the wire with a plain HTTP client: the
// Connect protocol's refusal is an HTTP 429 that proxies and browsers
// understand, with the headers in the HTTP response.
func TestInterceptorHTTPStatus(t *testing.T) {
	t.Parallel()
	base, hc := startServer(t, ratelimit.InterceptorParams{Limiter: redisLimiter(t)})
	post := func() *http.Response {
		req, err := http.NewRequest(http.MethodPost, base+procPing, strings.NewReader("{}"))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(tenantHeader, "http")
		res, err := hc.Do(req)
		require.NoError(t, err)
		require.NoError(t, res.Body.Close())
		return res
	}
	for range freePlan.Burst {
		res := post()
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.NotEmpty(t, res.Header.Get("RateLimit"))
	}
	res := post()
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	require.Equal(t, "6", res.Header.Get("Retry-After"))
	require.Equal(t, "0", res.Header.Get("X-RateLimit-Remaining"))
	require.Equal(t, `"default";r=0;t=6`, res.Header.Get("RateLimit"))
	for _, name := range ratelimit.HeaderNames() {
		require.NotEmpty(t, res.Header.Get(name), "HeaderNames lists %s, which a refusal sets", name)
	}
}

// TestInterceptorHandlerErrors: a call that was allowed but failed in the
// handler still reports the limit, whatever kind of error it returned.
func TestInterceptorHandlerErrors(t *testing.T) {
	t.Parallel()
	base, hc := startServer(t, ratelimit.InterceptorParams{Limiter: redisLimiter(t)})
	for _, p := range protocols {
		for _, c := range []struct {
			proc string
			code connect.Code
		}{
			{procNotFound, connect.CodeNotFound},
			{procBroken, connect.CodeUnknown},
		} {
			t.Run(p.name+c.proc, func(t *testing.T) {
				t.Parallel()
				_, err := call(context.Background(), t, base, hc, c.proc, t.Name(), p.opts...)
				require.Equal(t, c.code, connect.CodeOf(err), "%v", err)
				var cerr *connect.Error
				require.True(t, errors.As(err, &cerr))
				requireState(t, cerr.Meta(), 4, 6)
			})
		}
	}
}

func TestInterceptorStreaming(t *testing.T) {
	t.Parallel()
	base, hc := startServer(t, ratelimit.InterceptorParams{Limiter: redisLimiter(t)})
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			c := connect.NewClient[emptypb.Empty, emptypb.Empty](hc, base+procWatch, p.opts...)
			open := func() *connect.ServerStreamForClient[emptypb.Empty] {
				req := connect.NewRequest(&emptypb.Empty{})
				req.Header().Set(tenantHeader, t.Name())
				stream, err := c.CallServerStream(context.Background(), req)
				require.NoError(t, err)
				t.Cleanup(func() { _ = stream.Close() })
				return stream
			}
			for i := range freePlan.Burst {
				stream := open()
				n := 0
				for stream.Receive() {
					n++
				}
				require.NoError(t, stream.Err())
				require.Equal(t, 2, n, "a stream counts once, not per message")
				requireState(t, stream.ResponseHeader(), freePlan.Burst-1-i, 6*(i+1))
			}
			stream := open()
			require.False(t, stream.Receive())
			requireOverLimit(t, stream.Err())
		})
	}
}

func TestInterceptorNotLimited(t *testing.T) {
	t.Parallel()
	base, hc := startServer(t, ratelimit.InterceptorParams{Limiter: redisLimiter(t)})
	for range 2 * freePlan.Burst {
		res, err := call(context.Background(), t, base, hc, procPing, "")
		require.NoError(t, err)
		for _, name := range ratelimit.HeaderNames() {
			require.Empty(t, res.Header().Get(name), "an unlimited call reports no limit")
		}
	}
}

func TestInterceptorCostAndDecisions(t *testing.T) {
	t.Parallel()
	type decision struct {
		procedure string
		res       ratelimit.Result
	}
	var (
		mu        sync.Mutex
		decisions []decision
	)
	base, hc := startServer(t, ratelimit.InterceptorParams{
		Limiter: redisLimiter(t),
		CostFunc: func(procedure string) int {
			if procedure == procPing {
				return 2
			}
			return 0 // counts as 1
		},
		DecisionFunc: func(_ context.Context, procedure string, r ratelimit.Result) {
			mu.Lock()
			defer mu.Unlock()
			decisions = append(decisions, decision{procedure, r})
		},
	})
	ctx := context.Background()
	res, err := call(ctx, t, base, hc, procPing, "cost")
	require.NoError(t, err)
	require.Equal(t, "3", res.Header().Get("X-RateLimit-Remaining"))
	_, err = call(ctx, t, base, hc, procNotFound, "cost")
	require.Equal(t, connect.CodeNotFound, connect.CodeOf(err))
	res, err = call(ctx, t, base, hc, procPing, "cost")
	require.NoError(t, err)
	require.Equal(t, "0", res.Header().Get("X-RateLimit-Remaining"))
	_, err = call(ctx, t, base, hc, procPing, "cost")
	require.Equal(t, connect.CodeResourceExhausted, connect.CodeOf(err))

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, decisions, 4)
	for i, want := range []struct {
		procedure string
		allowed   bool
		remaining int
	}{
		{procPing, true, 3},
		{procNotFound, true, 2},
		{procPing, true, 0},
		{procPing, false, 0},
	} {
		require.Equal(t, want.procedure, decisions[i].procedure, "decision %d", i)
		require.Equal(t, want.allowed, decisions[i].res.Allowed, "decision %d", i)
		require.Equal(t, want.remaining, decisions[i].res.Remaining, "decision %d", i)
	}
}

// TestInterceptorFailsOpen: with the limiter failing (Redis stopped, no
// Failover), calls go through, and the failure is logged, but not per call.
func TestInterceptorFailsOpen(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	opts := srv.Options()
	opts.MaxRetries = -1
	opts.DialerRetries = 1 // go-redis's default redials for 400ms per call
	client := goredis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	srv.Stop()
	logs := &logBuffer{}
	base, hc := startServer(t, ratelimit.InterceptorParams{
		Limiter: ratelimit.NewRedis(client),
		Logger:  logs.logger(),
	})
	for range 2 * freePlan.Burst {
		res, err := call(context.Background(), t, base, hc, procPing, "open")
		require.NoError(t, err)
		require.Empty(t, res.Header().Get("RateLimit"), "no state to report")
	}
	require.Equal(t, 1, logs.count("rate limiter failed"))
}

func TestNewInterceptorPanicsWithoutLimiter(t *testing.T) {
	t.Parallel()
	require.Panics(t, func() { ratelimit.NewInterceptor(ratelimit.InterceptorParams{PolicyFunc: policyFromContext}) })
	require.Panics(t, func() { ratelimit.NewInterceptor(ratelimit.InterceptorParams{Limiter: ratelimit.NewLocal()}) })
}
