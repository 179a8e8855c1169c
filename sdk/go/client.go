// Package quarters is the Go client of the Quarters API: the generated
// Connect clients of every quarters.v1 service behind one constructor, with
// credentials, tenant selection, protocol choice and a retry policy set
// once, and helpers that read the details Quarters puts in its errors.
//
//	c := quarters.NewClient("http://localhost:8080", quarters.WithAPIKey(key))
//	resp, err := c.Projects.CreateProject(ctx, connect.NewRequest(&quartersv1.CreateProjectRequest{Name: "Launch"}))
//	if quota, limit, ok := quarters.QuotaExceeded(err); ok {
//		log.Printf("plan allows %d (%s)", limit, quota)
//	}
//
// Calls return *connect.Error values; the helpers in this package
// (IsNotFound, RateLimited, FeatureNotAvailable, QuotaExceeded, Violations,
// …) answer the questions a caller branches on without digging through
// error details by hand.
//
// People sign in with SignIn and get a session; a SessionTokenSource keeps
// it going, refreshing it before its access token expires:
//
//	sess, err := quarters.SignIn(ctx, baseURL, email, password, "acme")
//	src := quarters.NewSessionTokenSource(baseURL, sess, &quarters.SessionOpts{OnRefreshFunc: save})
//	c := quarters.NewClient(baseURL, quarters.WithSession(src))
//
// By default a Client retries what is safe to retry (see RetryPolicy):
// rate-limit refusals for every method, after exactly the wait the server
// asks for, and unavailable errors for read-only methods.
package quarters

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"runtime/debug"
	"sync"

	"connectrpc.com/connect"

	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
)

// Client holds a typed client for each Quarters service. All of them share
// the Client's options. A Client is safe for concurrent use; create one and
// reuse it, so calls share connections.
type Client struct {
	// Tenants signs up tenants (CreateTenant needs no credential) and
	// describes the caller's.
	Tenants quartersv1connect.TenantServiceClient
	// Projects manages the caller's projects.
	Projects quartersv1connect.ProjectServiceClient
	// Documents manages the documents in the caller's projects.
	Documents quartersv1connect.DocumentServiceClient
	// Plans describes the caller's plan, limits and usage.
	Plans quartersv1connect.PlanServiceClient
	// Analytics reports the caller's API usage (feature "analytics").
	Analytics quartersv1connect.AnalyticsServiceClient
	// Webhooks manages the tenant's webhook endpoints, their signing
	// secrets and deliveries (admins; feature "custom_webhooks").
	Webhooks quartersv1connect.WebhookServiceClient
	// Auth signs people in and out (see SignIn and SessionTokenSource,
	// which call it for you) and manages the tenant's API keys (admins).
	Auth quartersv1connect.AuthServiceClient
	// Members invites people and manages their roles; GetCurrentUser
	// describes the signed-in user. AcceptInvitation needs no credential.
	Members quartersv1connect.MemberServiceClient
	// Platform is the operator's administration of tenants; it needs the
	// platform credential (WithAPIKey with QUARTERS_PLATFORM_KEY).
	Platform quartersv1connect.PlatformServiceClient
}

// Protocol is the wire protocol a Client speaks. The server speaks all
// three; errors and their details look the same whichever is used.
type Protocol int

const (
	// Connect is the Connect protocol with binary Protobuf, over HTTP/1.1
	// or HTTP/2: the default.
	Connect Protocol = iota
	// GRPC is gRPC, which needs HTTP/2: over http:// URLs the Client then
	// uses HTTP/2 without TLS (h2c) unless given its own HTTP client.
	GRPC
	// GRPCWeb is gRPC-Web, over HTTP/1.1 or HTTP/2.
	GRPCWeb
)

// String names the protocol as Connect does.
func (p Protocol) String() string {
	switch p {
	case Connect:
		return "connect"
	case GRPC:
		return "grpc"
	case GRPCWeb:
		return "grpcweb"
	}
	return fmt.Sprintf("Protocol(%d)", int(p))
}

// TenantHeader is the request header that selects a tenant by id or slug.
// It only selects: it must agree with the credential's tenant, or the call
// is PERMISSION_DENIED (see TenantMismatch).
const TenantHeader = "X-Tenant-ID"

// An Option configures NewClient.
type Option func(*config)

type config struct {
	httpClient    *http.Client
	protocol      Protocol
	token         func(context.Context) (string, error)
	session       *SessionTokenSource // set by WithSession, with token
	tenant        string
	userAgent     string
	retry         RetryPolicy
	clientOptions []connect.ClientOption
}

// WithAPIKey authenticates every call with key ("qk_…", or the platform
// credential) as a bearer token. It replaces an earlier WithAPIKey,
// WithTokenSource or WithSession.
func WithAPIKey(key string) Option {
	return WithTokenSource(func(context.Context) (string, error) { return key, nil })
}

// WithTokenSource authenticates every call with the bearer token that
// source returns. It is called before each attempt, retries included, so a
// source that refreshes short-lived tokens (JWTs) never sends a stale one;
// cache inside source if fetching is costly. An error from source fails the
// call without contacting the server: UNAUTHENTICATED, or the error itself
// if it already is a *connect.Error. An empty token sends no credential. It
// replaces an earlier WithAPIKey, WithTokenSource or WithSession.
func WithTokenSource(source func(ctx context.Context) (string, error)) Option {
	return func(c *config) { c.token, c.session = source, nil }
}

// WithSession authenticates every call with the access token of src's
// session, as WithTokenSource(src.Token) does, and goes one step further
// for unary calls: when the server refuses a token that src believed
// valid (UNAUTHENTICATED, e.g. because the member's role changed since it
// was issued), src refreshes the session (once for all the calls refused
// together) and the call is sent again, once. If the session cannot go on,
// the call fails with UNAUTHENTICATED wrapping ErrSessionEnded. It replaces
// an earlier WithAPIKey, WithTokenSource or WithSession.
func WithSession(src *SessionTokenSource) Option {
	return func(c *config) { c.token, c.session = src.Token, src }
}

// WithTenant sends idOrSlug in the X-Tenant-ID header on every call. The
// credential still decides the tenant; the header makes the server refuse
// calls whose credential belongs to another tenant (TenantMismatch), which
// guards a process that juggles several tenants' keys.
func WithTenant(idOrSlug string) Option {
	return func(c *config) { c.tenant = idOrSlug }
}

// WithHTTPClient makes the Client send its requests with hc instead of its
// own. With GRPC, hc must speak HTTP/2 to the server (for http:// URLs:
// http.Protocols.SetUnencryptedHTTP2 on its transport).
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) { c.httpClient = hc }
}

// WithProtocol chooses the wire protocol; the default is Connect.
func WithProtocol(p Protocol) Option {
	return func(c *config) { c.protocol = p }
}

// WithRetry replaces the default retry policy. Zero fields of p take the
// default's values; MaxAttempts 1 disables retries, as WithoutRetry does.
func WithRetry(p RetryPolicy) Option {
	return func(c *config) { c.retry = p.withDefaults() }
}

// WithoutRetry makes every call a single attempt: errors, rate-limit
// refusals included, come back at once, for callers that schedule their own
// retries.
func WithoutRetry() Option {
	return func(c *config) { c.retry = RetryPolicy{MaxAttempts: 1} }
}

// WithUserAgent puts product (e.g. "acme-sync/1.4") in front of the SDK's
// own User-Agent ("quarters-go/<version> connect-go/<version> (<go>)"), so
// the server's logs name the application and still know the SDK.
func WithUserAgent(product string) Option {
	return func(c *config) { c.userAgent = product }
}

// WithClientOptions passes further options to every generated client, e.g.
// connect.WithHTTPGet() or connect.WithSendGzip(). Interceptors given here
// run inside the Client's own, so they see every attempt of a retried call.
func WithClientOptions(opts ...connect.ClientOption) Option {
	return func(c *config) { c.clientOptions = append(c.clientOptions, opts...) }
}

// NewClient returns a Client for the Quarters server at baseURL, e.g.
// "http://localhost:8080" or "https://api.quarters.dev". Without options it
// speaks Connect, sends no credential (enough for CreateTenant) and retries
// with DefaultRetryPolicy. A malformed baseURL is not reported here but by
// every call, as the generated clients do.
func NewClient(baseURL string, opts ...Option) *Client {
	cfg := config{retry: DefaultRetryPolicy()}
	for _, o := range opts {
		o(&cfg)
	}
	hc := cfg.httpClient
	if hc == nil {
		hc = defaultHTTPClient(cfg.protocol, baseURL)
	}
	// The first interceptor is the outermost: retry wraps the headers so
	// that every attempt asks the token source again.
	copts := []connect.ClientOption{connect.WithInterceptors(
		newRetryInterceptor(cfg.retry),
		&headerInterceptor{token: cfg.token, session: cfg.session, tenant: cfg.tenant, userAgent: userAgent(cfg.userAgent)},
	)}
	switch cfg.protocol {
	case GRPC:
		copts = append(copts, connect.WithGRPC())
	case GRPCWeb:
		copts = append(copts, connect.WithGRPCWeb())
	}
	copts = append(copts, cfg.clientOptions...)
	return &Client{
		Tenants:   quartersv1connect.NewTenantServiceClient(hc, baseURL, copts...),
		Projects:  quartersv1connect.NewProjectServiceClient(hc, baseURL, copts...),
		Documents: quartersv1connect.NewDocumentServiceClient(hc, baseURL, copts...),
		Plans:     quartersv1connect.NewPlanServiceClient(hc, baseURL, copts...),
		Analytics: quartersv1connect.NewAnalyticsServiceClient(hc, baseURL, copts...),
		Auth:      quartersv1connect.NewAuthServiceClient(hc, baseURL, copts...),
		Members:   quartersv1connect.NewMemberServiceClient(hc, baseURL, copts...),
		Platform:  quartersv1connect.NewPlatformServiceClient(hc, baseURL, copts...),
		Webhooks:  quartersv1connect.NewWebhookServiceClient(hc, baseURL, copts...),
	}
}

// defaultHTTPClient is http.DefaultClient, except for gRPC over http://,
// which needs HTTP/2 without TLS: the default transport would speak
// HTTP/1.1 there.
func defaultHTTPClient(p Protocol, baseURL string) *http.Client {
	if u, err := url.Parse(baseURL); p == GRPC && err == nil && u.Scheme == "http" {
		return h2cClient()
	}
	return http.DefaultClient
}

// h2cClient is shared by all Clients, as http.DefaultClient is, so that
// they share its connections.
var h2cClient = sync.OnceValue(func() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Protocols = new(http.Protocols)
	t.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: t}
})

// headerInterceptor sets the credential, tenant selector and User-Agent on
// each attempt. Every header is Set, not added, so a retried request
// carries each once. With a session, a refused token is refreshed and the
// call sent again, once.
type headerInterceptor struct {
	token     func(context.Context) (string, error)
	session   *SessionTokenSource
	tenant    string
	userAgent string
}

func (h *headerInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		token, err := h.set(ctx, req.Header())
		if err != nil {
			return nil, err
		}
		resp, err := next(ctx, req)
		if h.session == nil || token == "" || connect.CodeOf(err) != connect.CodeUnauthenticated {
			return resp, err
		}
		if err := h.session.rejected(ctx, token); err != nil {
			return nil, tokenError(err)
		}
		if _, err := h.set(ctx, req.Header()); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (h *headerInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		// A stream's headers can only be set before its first message;
		// a token error then surfaces from Send as the unary path's does.
		if _, err := h.set(ctx, conn.RequestHeader()); err != nil {
			return &failedConn{StreamingClientConn: conn, err: err}
		}
		return conn
	}
}

func (h *headerInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// set sets the headers and returns the bearer token it sent, if any.
func (h *headerInterceptor) set(ctx context.Context, header http.Header) (string, error) {
	header.Set("User-Agent", h.userAgent)
	if h.tenant != "" {
		header.Set(TenantHeader, h.tenant)
	}
	if h.token == nil {
		return "", nil
	}
	token, err := h.token(ctx)
	if err != nil {
		return "", tokenError(err)
	}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	return token, nil
}

// tokenError gives a token source's failure a code: the source's own if it
// chose one, canceled or deadline_exceeded if the context ended, else
// unauthenticated, since the call cannot be authenticated.
func tokenError(err error) error {
	var cerr *connect.Error
	switch {
	case errors.As(err, &cerr):
		return err
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	}
	return connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("token source: %w", err))
}

// failedConn is a stream whose headers could not be set: it fails on first
// use instead of sending an unauthenticated request.
type failedConn struct {
	connect.StreamingClientConn
	err error
}

func (c *failedConn) Send(any) error    { return c.err }
func (c *failedConn) Receive(any) error { return c.err }

// userAgent is the User-Agent every call sends: the application's product
// token, if any, then the SDK's and Connect's versions.
func userAgent(product string) string {
	ua := fmt.Sprintf("quarters-go/%s connect-go/%s (%s)", sdkVersion(), connect.Version, runtime.Version())
	if product != "" {
		ua = product + " " + ua
	}
	return ua
}

// sdkVersion is this module's version as the application's build recorded
// it, so the User-Agent needs no hand-maintained constant; "devel" when
// built inside the module itself.
var sdkVersion = sync.OnceValue(func() string {
	const module = "github.com/quarters-dev/quarters"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	for _, m := range append([]*debug.Module{&bi.Main}, bi.Deps...) {
		if m.Path == module && m.Version != "" && m.Version != "(devel)" {
			return m.Version
		}
	}
	return "devel"
})
