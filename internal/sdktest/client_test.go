package sdktest_test

// These tests call a real Quarters server (servertest: the production
// handler on a fresh PostgreSQL database) through the SDK only, as an
// application would.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/servertest"
	quarters "github.com/quarters-dev/quarters/sdk/go"
)

var ctx = context.Background()

func req[T any](m *T) *connect.Request[T] { return connect.NewRequest(m) }

const unknownID = "00000000-0000-4000-8000-000000000000"

var slugs atomic.Int64

// signUp creates a tenant through the SDK, as the quickstart does, and
// returns its id, slug and API key.
func signUp(t *testing.T, c *quarters.Client) (id, slug, key string) {
	t.Helper()
	slug = fmt.Sprintf("sdk-%d-%d", slugs.Add(1), time.Now().UnixNano()%1e6)
	resp, err := c.Tenants.CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{
		Slug: slug, Name: "SDK " + slug, OwnerEmail: "owner@" + slug + ".example",
	}))
	require.NoError(t, err)
	require.Equal(t, slug, resp.Msg.GetTenant().GetSlug())
	require.True(t, strings.HasPrefix(resp.Msg.GetApiKeySecret(), "qk_"))
	return resp.Msg.GetTenant().GetId(), slug, resp.Msg.GetApiKeySecret()
}

// counter is an http.RoundTripper that counts the requests that reach the
// wire, and keeps the last one's headers.
type counter struct {
	base http.RoundTripper
	n    atomic.Int64
	mu   sync.Mutex
	last http.Header
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	c.mu.Lock()
	c.last = r.Header.Clone()
	c.mu.Unlock()
	return c.base.RoundTrip(r)
}

func (c *counter) lastHeader() http.Header {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

func counting(s *servertest.Server) (*counter, quarters.Option) {
	c := &counter{base: s.HTTP.Transport}
	return c, quarters.WithHTTPClient(&http.Client{Transport: c})
}

func TestCRUD(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	id, slug, key := signUp(t, quarters.NewClient(s.URL))
	c := quarters.NewClient(s.URL, quarters.WithAPIKey(key))

	me, err := c.Tenants.GetTenant(ctx, req(&quartersv1.GetTenantRequest{}))
	require.NoError(t, err)
	require.Equal(t, id, me.Msg.GetTenant().GetId())
	require.Equal(t, slug, me.Msg.GetTenant().GetSlug())

	created, err := c.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: "Launch", Description: "d"}))
	require.NoError(t, err)
	p := created.Msg.GetProject()
	require.Equal(t, "Launch", p.GetName())

	updated, err := c.Projects.UpdateProject(ctx, req(&quartersv1.UpdateProjectRequest{
		Project:    &quartersv1.Project{Id: p.GetId(), Name: "Launch v2"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
	}))
	require.NoError(t, err)
	require.Equal(t, "Launch v2", updated.Msg.GetProject().GetName())
	require.Equal(t, "d", updated.Msg.GetProject().GetDescription())

	doc, err := c.Documents.CreateDocument(ctx, req(&quartersv1.CreateDocumentRequest{ProjectId: p.GetId(), Title: "Kickoff", Content: "Ship it."}))
	require.NoError(t, err)
	list, err := c.Documents.ListDocuments(ctx, req(&quartersv1.ListDocumentsRequest{}))
	require.NoError(t, err)
	require.Len(t, list.Msg.GetDocuments(), 1)
	require.Equal(t, doc.Msg.GetDocument().GetId(), list.Msg.GetDocuments()[0].GetId())
	require.Equal(t, "Ship it.", list.Msg.GetDocuments()[0].GetContent())

	plan, err := c.Plans.GetPlan(ctx, req(&quartersv1.GetPlanRequest{}))
	require.NoError(t, err)
	require.Equal(t, "free", plan.Msg.GetPlan())
	require.EqualValues(t, 1, plan.Msg.GetUsage().GetProjects())

	_, err = c.Documents.DeleteDocument(ctx, req(&quartersv1.DeleteDocumentRequest{Id: doc.Msg.GetDocument().GetId()}))
	require.NoError(t, err)
	_, err = c.Documents.GetDocument(ctx, req(&quartersv1.GetDocumentRequest{Id: doc.Msg.GetDocument().GetId()}))
	require.True(t, quarters.IsNotFound(err), "deleted document: %v", err)
	_, err = c.Projects.DeleteProject(ctx, req(&quartersv1.DeleteProjectRequest{Id: p.GetId()}))
	require.NoError(t, err)
	_, err = c.Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: p.GetId()}))
	require.True(t, quarters.IsNotFound(err), "deleted project: %v", err)
}

// TestOtherTenantNotFound: another tenant's id is NOT_FOUND, exactly like
// an id that never existed.
func TestOtherTenantNotFound(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	anon := quarters.NewClient(s.URL)
	_, _, keyA := signUp(t, anon)
	_, _, keyB := signUp(t, anon)
	a := quarters.NewClient(s.URL, quarters.WithAPIKey(keyA))
	b := quarters.NewClient(s.URL, quarters.WithAPIKey(keyB))

	p, err := a.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: "secret"}))
	require.NoError(t, err)
	_, err = a.Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: p.Msg.GetProject().GetId()}))
	require.NoError(t, err)
	require.False(t, quarters.IsNotFound(err))

	for _, id := range []string{p.Msg.GetProject().GetId(), unknownID} {
		_, err = b.Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: id}))
		require.True(t, quarters.IsNotFound(err), "%s: %v", id, err)
		require.False(t, quarters.IsPermissionDenied(err))
	}
}

func TestTenantSelector(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	anon := quarters.NewClient(s.URL)
	idA, slugA, keyA := signUp(t, anon)
	idB, slugB, _ := signUp(t, anon)
	transport, viaCounter := counting(s)

	get := func(sel string) error {
		c := quarters.NewClient(s.URL, quarters.WithAPIKey(keyA), quarters.WithTenant(sel), viaCounter)
		_, err := c.Tenants.GetTenant(ctx, req(&quartersv1.GetTenantRequest{}))
		return err
	}
	for _, sel := range []string{idA, slugA} {
		require.NoError(t, get(sel))
		require.Equal(t, sel, transport.lastHeader().Get(quarters.TenantHeader))
	}
	for _, sel := range []string{idB, slugB, "nobody"} {
		err := get(sel)
		require.True(t, quarters.TenantMismatch(err), "%s: %v", sel, err)
		require.True(t, quarters.IsPermissionDenied(err))
		require.False(t, quarters.TenantSuspended(err))
		_, _, _, feature := quarters.FeatureNotAvailable(err)
		require.False(t, feature)
	}
	require.False(t, quarters.TenantMismatch(nil))
}

func TestTenantSuspended(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	id, _, key := signUp(t, quarters.NewClient(s.URL))
	s.Exec(t, id, "update tenants set status = 'suspended' where id = $1", id)
	_, err := quarters.NewClient(s.URL, quarters.WithAPIKey(key)).Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.True(t, quarters.TenantSuspended(err), "%v", err)
	require.False(t, quarters.TenantMismatch(err))
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	_, _, key := signUp(t, quarters.NewClient(s.URL))
	transport, viaCounter := counting(s)
	list := func(opts ...quarters.Option) error {
		_, err := quarters.NewClient(s.URL, append(opts, viaCounter)...).Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
		return err
	}

	require.True(t, quarters.IsUnauthenticated(list()))
	require.True(t, quarters.IsUnauthenticated(list(quarters.WithAPIKey("qk_nope"))))
	require.NoError(t, list(quarters.WithAPIKey(key)))
	require.Equal(t, "Bearer "+key, transport.lastHeader().Get("Authorization"))

	var calls atomic.Int64
	source := func(context.Context) (string, error) { calls.Add(1); return key, nil }
	require.NoError(t, list(quarters.WithTokenSource(source)))
	require.EqualValues(t, 1, calls.Load())
	// The last option wins.
	require.NoError(t, list(quarters.WithAPIKey("qk_nope"), quarters.WithTokenSource(source)))

	// A failing token source fails the call before it is sent.
	before := transport.n.Load()
	err := list(quarters.WithTokenSource(func(context.Context) (string, error) { return "", errors.New("idp down") }))
	require.True(t, quarters.IsUnauthenticated(err), "%v", err)
	require.ErrorContains(t, err, "idp down")
	require.Equal(t, before, transport.n.Load())

	// A tenant key cannot call the operator's service; the platform key can.
	_, err = quarters.NewClient(s.URL, quarters.WithAPIKey(key)).Platform.ListTenants(ctx, req(&quartersv1.ListTenantsRequest{}))
	require.True(t, quarters.IsPermissionDenied(err), "%v", err)
	tenants, err := quarters.NewClient(s.URL, quarters.WithAPIKey(s.PlatformKey)).Platform.ListTenants(ctx, req(&quartersv1.ListTenantsRequest{}))
	require.NoError(t, err)
	require.Len(t, tenants.Msg.GetTenants(), 1)
}

func TestUserAgent(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	transport, viaCounter := counting(s)
	for _, c := range []struct {
		opts   []quarters.Option
		prefix string
	}{
		{nil, "quarters-go/"},
		{[]quarters.Option{quarters.WithUserAgent("acme-sync/1.4")}, "acme-sync/1.4 quarters-go/"},
	} {
		_, err := quarters.NewClient(s.URL, append(c.opts, viaCounter)...).Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
		require.True(t, quarters.IsUnauthenticated(err))
		ua := transport.lastHeader().Get("User-Agent")
		require.True(t, strings.HasPrefix(ua, c.prefix), ua)
		require.Contains(t, ua, " connect-go/"+connect.Version)
	}
}

func TestViolations(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	anon := quarters.NewClient(s.URL)
	_, err := anon.Tenants.CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{Slug: "WWW", Name: "", OwnerEmail: "nope"}))
	vs := quarters.Violations(err)
	fields := map[string]string{}
	for _, v := range vs {
		require.NotEmpty(t, v.Message, "%+v", v)
		require.NotEmpty(t, v.RuleID, "%+v", v)
		fields[v.Field] = v.Message
	}
	require.Contains(t, fields, "slug")
	require.Contains(t, fields, "name")
	require.Contains(t, fields, "owner_email")
	require.Contains(t, fields["owner_email"], "email")

	// A rule on the whole message has no field; its id names it.
	_, _, key := signUp(t, anon)
	c := quarters.NewClient(s.URL, quarters.WithAPIKey(key))
	_, err = c.Documents.UpdateDocument(ctx, req(&quartersv1.UpdateDocumentRequest{
		Document:   &quartersv1.Document{Id: unknownID},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"title"}},
	}))
	require.Equal(t, []quarters.FieldViolation{{
		RuleID: "document.title", Message: "document.title must not be empty when update_mask names it",
	}}, quarters.Violations(err))

	// Other errors have none.
	_, err = c.Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: unknownID}))
	require.True(t, quarters.IsNotFound(err))
	require.Nil(t, quarters.Violations(err))
	require.Nil(t, quarters.Violations(nil))
}

// TestProtocols: the same calls and error details over every protocol,
// with the SDK's default HTTP client (h2c for gRPC).
func TestProtocols(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	for _, p := range []quarters.Protocol{quarters.Connect, quarters.GRPC, quarters.GRPCWeb} {
		t.Run(p.String(), func(t *testing.T) {
			t.Parallel()
			_, slug, key := signUp(t, quarters.NewClient(s.URL, quarters.WithProtocol(p)))
			c := quarters.NewClient(s.URL, quarters.WithProtocol(p), quarters.WithAPIKey(key))
			created, err := c.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: "over " + p.String()}))
			require.NoError(t, err)
			got, err := c.Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: created.Msg.GetProject().GetId()}))
			require.NoError(t, err)
			require.Equal(t, "over "+p.String(), got.Msg.GetProject().GetName())

			_, err = c.Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: unknownID}))
			require.True(t, quarters.IsNotFound(err), "%v", err)
			_, err = c.Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: "42"}))
			require.Len(t, quarters.Violations(err), 1, "%v", err)
			require.Equal(t, "id", quarters.Violations(err)[0].Field)
			_, err = quarters.NewClient(s.URL, quarters.WithProtocol(p), quarters.WithAPIKey(key), quarters.WithTenant(slug+"x")).
				Tenants.GetTenant(ctx, req(&quartersv1.GetTenantRequest{}))
			require.True(t, quarters.TenantMismatch(err), "%v", err)
			_, _, _, ok := quarters.FeatureNotAvailable(getUsage(c))
			require.True(t, ok)
		})
	}
}

func getUsage(c *quarters.Client) error {
	_, err := c.Analytics.GetUsage(ctx, req(&quartersv1.GetUsageRequest{StartDate: "2026-01-01", EndDate: "2026-01-31"}))
	return err
}

func TestFeatureNotAvailable(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	id, _, key := signUp(t, quarters.NewClient(s.URL))
	c := quarters.NewClient(s.URL, quarters.WithAPIKey(key))

	err := getUsage(c)
	feature, plan, upgradeURL, ok := quarters.FeatureNotAvailable(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, "analytics", feature)
	require.Equal(t, "free", plan)
	require.Equal(t, "https://quarters.dev/pricing", upgradeURL)
	require.True(t, quarters.IsPermissionDenied(err))
	require.False(t, quarters.TenantMismatch(err))

	s.SetPlan(t, id, "pro")
	require.NoError(t, getUsage(c))
	_, _, _, ok = quarters.FeatureNotAvailable(nil)
	require.False(t, ok)
}

// TestQuotaExceeded: a free tenant's sixth project is a quota failure,
// which the SDK reports at once instead of retrying.
func TestQuotaExceeded(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	id, _, key := signUp(t, quarters.NewClient(s.URL))
	s.Unthrottle(t, id)
	transport, viaCounter := counting(s)
	c := quarters.NewClient(s.URL, quarters.WithAPIKey(key), viaCounter)
	for i := range 5 {
		_, err := c.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: fmt.Sprint("p", i)}))
		require.NoError(t, err)
	}
	before := transport.n.Load()
	_, err := c.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: "one too many"}))
	quota, limit, ok := quarters.QuotaExceeded(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, "max_projects", quota)
	require.EqualValues(t, 5, limit)
	_, limited := quarters.RateLimited(err)
	require.False(t, limited)
	require.Equal(t, before+1, transport.n.Load(), "a quota failure is not retried")
}

// TestRateLimited: with retries off, a free tenant's 21st quick call is
// refused, and RateLimited says for how long.
func TestRateLimited(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	_, _, key := signUp(t, quarters.NewClient(s.URL))
	transport, viaCounter := counting(s)
	c := quarters.NewClient(s.URL, quarters.WithAPIKey(key), quarters.WithoutRetry(), viaCounter)
	var err error
	calls := 0
	for err == nil && calls < 60 {
		calls++
		_, err = c.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	}
	wait, ok := quarters.RateLimited(err)
	require.True(t, ok, "%v", err)
	require.Positive(t, wait)
	require.LessOrEqual(t, wait, time.Second, "the free plan refills a request every 600ms")
	require.GreaterOrEqual(t, calls, 20, "burst of 20")
	require.EqualValues(t, calls, transport.n.Load(), "no retries")
	_, _, quota := quarters.QuotaExceeded(err)
	require.False(t, quota)

	// A policy whose cap is below the wait returns the refusal at once.
	capped := quarters.NewClient(s.URL, quarters.WithAPIKey(key), viaCounter,
		quarters.WithRetry(quarters.RetryPolicy{MaxAttempts: 5, MaxBackoff: time.Millisecond}))
	before := transport.n.Load()
	_, err = capped.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	_, ok = quarters.RateLimited(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, before+1, transport.n.Load())
}

// TestRateLimitRetry: with a limit of one request per 200ms and no burst,
// back-to-back calls get refused, and the SDK waits what the server said
// (at least that long, between the refused attempt and the next) and
// succeeds on the second attempt.
func TestRateLimitRetry(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	id, _, key := signUp(t, quarters.NewClient(s.URL))
	s.Exec(t, id, "insert into tenant_overrides (tenant_id, requests_per_minute, burst) values ($1, 300, 1)", id)
	transport, viaCounter := counting(s)

	// attempts records, from inside the retry loop, when each attempt
	// started and ended and what the server asked for.
	type attempt struct {
		start, end time.Time
		wait       time.Duration
		limited    bool
	}
	var mu sync.Mutex
	var attempts []attempt
	record := connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, r connect.AnyRequest) (connect.AnyResponse, error) {
			a := attempt{start: time.Now()}
			resp, err := next(ctx, r)
			a.end = time.Now()
			a.wait, a.limited = quarters.RateLimited(err)
			mu.Lock()
			attempts = append(attempts, a)
			mu.Unlock()
			return resp, err
		}
	})
	c := quarters.NewClient(s.URL, quarters.WithAPIKey(key), viaCounter,
		quarters.WithClientOptions(connect.WithInterceptors(record)))

	retried := false
	for i := 0; i < 10 && !retried; i++ {
		mu.Lock()
		attempts = nil
		mu.Unlock()
		before := transport.n.Load()
		start := time.Now()
		_, err := c.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
		elapsed := time.Since(start)
		require.NoError(t, err)
		sent := transport.n.Load() - before
		mu.Lock()
		got := attempts
		mu.Unlock()
		require.EqualValues(t, len(got), sent)
		if sent == 1 {
			continue // the bucket had refilled; try again at once
		}
		require.EqualValues(t, 2, sent, "waiting what the server said is enough")
		require.True(t, got[0].limited)
		require.Positive(t, got[0].wait)
		require.LessOrEqual(t, got[0].wait, 200*time.Millisecond)
		require.GreaterOrEqual(t, got[1].start.Sub(got[0].end), got[0].wait, "retried early")
		require.GreaterOrEqual(t, elapsed, got[0].wait)
		retried = true
	}
	require.True(t, retried, "no call was rate limited")
}

// TestRequestTooLargeNotRetried: a body over the server's limit is
// INVALID_ARGUMENT without RetryInfo, and the SDK sends it once: sending
// the same body again could only fail again.
func TestRequestTooLargeNotRetried(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	_, _, key := signUp(t, quarters.NewClient(s.URL))
	transport, viaCounter := counting(s)
	c := quarters.NewClient(s.URL, quarters.WithAPIKey(key), viaCounter)
	p, err := c.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: "big"}))
	require.NoError(t, err)
	before := transport.n.Load()
	_, err = c.Documents.CreateDocument(ctx, req(&quartersv1.CreateDocumentRequest{
		ProjectId: p.Msg.GetProject().GetId(), Title: "huge", Content: strings.Repeat("x", 5<<20),
	}))
	require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
	_, limited := quarters.RateLimited(err)
	require.False(t, limited)
	require.EqualValues(t, 1, transport.n.Load()-before, "sent once")
}
