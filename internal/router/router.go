// Package router assembles Quarters' HTTP handler: the Connect services
// behind the production interceptor chain, gRPC health and reflection, the
// liveness and readiness probes, and the tenant console. The command and the
// tests both build their server with it, so tests exercise exactly what runs
// in production.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"time"

	"connectrpc.com/authn"
	"connectrpc.com/connect"
	connectcors "connectrpc.com/cors"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"connectrpc.com/validate"
	"github.com/google/uuid"
	"github.com/rs/cors"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/quarters-dev/quarters/db"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/access"
	"github.com/quarters-dev/quarters/internal/analytics"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/authsvc"
	"github.com/quarters-dev/quarters/internal/codec"
	"github.com/quarters-dev/quarters/internal/console"
	"github.com/quarters-dev/quarters/internal/document"
	"github.com/quarters-dev/quarters/internal/export"
	"github.com/quarters-dev/quarters/internal/guard"
	"github.com/quarters-dev/quarters/internal/httperr"
	"github.com/quarters-dev/quarters/internal/idp"
	"github.com/quarters-dev/quarters/internal/input"
	"github.com/quarters-dev/quarters/internal/jobs"
	"github.com/quarters-dev/quarters/internal/member"
	"github.com/quarters-dev/quarters/internal/metering"
	"github.com/quarters-dev/quarters/internal/metrics"
	"github.com/quarters-dev/quarters/internal/observe"
	"github.com/quarters-dev/quarters/internal/openapi"
	"github.com/quarters-dev/quarters/internal/password"
	"github.com/quarters-dev/quarters/internal/plan"
	"github.com/quarters-dev/quarters/internal/platform"
	"github.com/quarters-dev/quarters/internal/project"
	"github.com/quarters-dev/quarters/internal/ratelimit"
	"github.com/quarters-dev/quarters/internal/session"
	"github.com/quarters-dev/quarters/internal/tenancy"
	"github.com/quarters-dev/quarters/internal/tenant"
	"github.com/quarters-dev/quarters/internal/tenantsvc"
	"github.com/quarters-dev/quarters/internal/tracing"
	"github.com/quarters-dev/quarters/internal/webhooksvc"
)

// DefaultMaxBodyBytes caps a request body: a document's content is at most
// 1 MiB, so 4 MiB leaves room for any valid request in any encoding.
const DefaultMaxBodyBytes = 4 << 20

// Params are New's inputs: the dependencies, all required (internal/app
// builds them, and runs the loops that flush and refresh them, so a
// recorder nobody flushes cannot happen), and the Settings.
type Params struct {
	DB     *db.DB
	Logger *slog.Logger
	// Tenants caches tenant records.
	Tenants *tenant.Cache
	// Limiter rate-limits tenants and public RPCs.
	Limiter ratelimit.Limiter
	// Usage counts calls; KeyUse records when API keys were last used.
	Usage  *metering.Usage
	KeyUse *metering.KeyUse
	// Cost attributes each call's database cost to its tenant.
	Cost *metering.Cost
	// Sessions signs and checks people's access tokens.
	Sessions *session.Manager
	// Jobs enqueues background jobs (the identity flows' mails) in the
	// transactions that cause them. Its workers run in internal/app.
	Jobs *jobs.Client
	// IDP, when set, also accepts access tokens from an external identity
	// provider: tokens whose iss is its issuer go to it, the rest to
	// Sessions. Nil accepts only Quarters' own tokens.
	IDP *idp.Verifier
	// Metrics, when set, counts every call and is served at GET /metrics
	// (behind the platform credential when one is set).
	Metrics *metrics.Metrics
	// TracerProvider, when set, gives every RPC a server span with the
	// caller's tenant as tenant.id (package tracing).
	TracerProvider trace.TracerProvider
	Settings
}

// Settings are the router's configuration; zero values mean defaults.
type Settings struct {
	// BaseDomain enables subdomain tenant selection: <slug>.<BaseDomain>.
	BaseDomain string
	// MaxBodyBytes caps request bodies, and messages once decompressed
	// (default DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// BodyTimeout is how long an RPC's request body may take to arrive,
	// plus a second per guard.MinBodyRate bytes (default
	// guard.DefaultBodyTimeout).
	BodyTimeout time.Duration
	// UpgradeURL is where plan-limit and feature errors send the caller.
	UpgradeURL string
	// PlatformKey is the operator's credential for PlatformService; empty
	// disables it.
	PlatformKey string
	// AnonymousLimit rate-limits public RPCs (sign-up, sign-in) per client
	// address and procedure, whatever credential the call carries; zero
	// means DefaultAnonymousLimit.
	AnonymousLimit ratelimit.Limit
	// AccountLimit rate-limits calls that try to authenticate as an
	// account (SignIn) per account, across addresses; zero means
	// DefaultAccountLimit.
	AccountLimit ratelimit.Limit
	// TrustedProxies are the proxies whose X-Forwarded-For names the
	// client address; empty: the TCP peer is the client.
	TrustedProxies observe.TrustedProxies
	// DisableRateLimit removes the rate limiter from the chain: for
	// measuring its cost (task bench), never for production.
	DisableRateLimit bool
	// CORSOrigins are the browser origins allowed to call the API; empty
	// allows any origin (credentials are bearer tokens, never cookies).
	CORSOrigins []string
	// Password is the argon2id cost of new password hashes; zero means
	// password.Default.
	Password password.Params
	// WebhookAllowLoopback admits webhook endpoints on loopback hosts,
	// over plain http too: for development, where the receiver runs on
	// the same machine; never in production. internal/app gives the
	// delivery worker the same setting.
	WebhookAllowLoopback bool
	// DeletionGrace is how long a deleted tenant waits for its purge (its
	// owner may export or cancel meanwhile); zero means
	// deletion.DefaultGrace.
	DeletionGrace time.Duration
}

// DefaultAnonymousLimit is how fast one client address may call public
// RPCs (sign-up): enough for people, not for a script creating tenants.
var DefaultAnonymousLimit = ratelimit.PerMinute(10, 10)

// DefaultAccountLimit is how often one account may be tried (SignIn) from
// addresses it has not signed in from, all together: 10 at once, then one
// every 2 minutes, about 720 guesses a day however many addresses the
// guesser has, while its owner's familiar addresses keep buckets of their
// own.
var DefaultAccountLimit = ratelimit.Limit{Rate: 30, Period: time.Hour, Burst: 10}

// DefaultUpgradeURL is named in errors when no upgrade URL is configured.
const DefaultUpgradeURL = "https://quarters.dev/pricing"

// Services are the quarters.v1 services the router serves, in the order
// reflection lists them.
func Services() []protoreflect.ServiceDescriptor {
	return []protoreflect.ServiceDescriptor{
		quartersv1.File_quarters_v1_tenant_proto.Services().ByName("TenantService"),
		quartersv1.File_quarters_v1_project_proto.Services().ByName("ProjectService"),
		quartersv1.File_quarters_v1_document_proto.Services().ByName("DocumentService"),
		quartersv1.File_quarters_v1_auth_proto.Services().ByName("AuthService"),
		quartersv1.File_quarters_v1_member_proto.Services().ByName("MemberService"),
		quartersv1.File_quarters_v1_plan_proto.Services().ByName("PlanService"),
		quartersv1.File_quarters_v1_analytics_proto.Services().ByName("AnalyticsService"),
		quartersv1.File_quarters_v1_platform_proto.Services().ByName("PlatformService"),
		quartersv1.File_quarters_v1_webhook_proto.Services().ByName("WebhookService"),
	}
}

// New returns the whole HTTP handler. It fails if a served RPC lacks an
// access rule.
func New(p Params) (http.Handler, error) {
	for name, missing := range map[string]bool{
		"DB": p.DB == nil, "Logger": p.Logger == nil, "Tenants": p.Tenants == nil, "Limiter": p.Limiter == nil,
		"Usage": p.Usage == nil, "KeyUse": p.KeyUse == nil, "Cost": p.Cost == nil, "Sessions": p.Sessions == nil, "Jobs": p.Jobs == nil,
	} {
		if missing {
			return nil, fmt.Errorf("router: Params.%s is required", name)
		}
	}
	if p.MaxBodyBytes <= 0 {
		p.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if p.UpgradeURL == "" {
		p.UpgradeURL = DefaultUpgradeURL
	}
	if p.AnonymousLimit.Rate == 0 {
		p.AnonymousLimit = DefaultAnonymousLimit
	}
	if p.AccountLimit.Rate == 0 {
		p.AccountLimit = DefaultAccountLimit
	}
	if p.Password == (password.Params{}) {
		p.Password = password.Default
	}
	rules, err := access.RulesFor(Services()...)
	if err != nil {
		return nil, err
	}
	errs := observe.NewErrors(p.Logger)
	var spans tracingInterceptors
	if p.TracerProvider != nil {
		if spans.outer, spans.tenant, err = tracing.Interceptors(p.TracerProvider); err != nil {
			return nil, err
		}
	}
	opts := []connect.HandlerOption{
		connect.WithInterceptors(interceptors(p, rules, errs, spans)...),
		// Not WithReadMaxBytes: its refusal is RESOURCE_EXHAUSTED (HTTP
		// 429), which clients retry; guard's is INVALID_ARGUMENT (413).
		guard.Gzip(p.MaxBodyBytes),
		connect.WithRecover(recoverFunc(p.Logger)),
	}
	// JSON responses from precomputed plans, byte for byte protojson's
	// (server/codec, issue 10).
	opts = append(opts, codec.HandlerOptions()...)
	// Live API keys are served from memory; a revocation or a change to
	// the key's tenant invalidates the tenant, which drops its keys on
	// every replica.
	keys := auth.NewKeyCache(auth.KeyCacheParams{Lookup: auth.LookupIn(p.DB)})
	p.Tenants.OnDrop(keys.DropTenant)
	authMW := auth.NewMiddleware(auth.MiddlewareParams{
		Lookup:         keys.Lookup,
		VerifyToken:    verifyFunc(p),
		IsPublic:       rules.IsPublic,
		Check:          tenant.CheckSelectors(p.BaseDomain),
		PlatformKey:    p.PlatformKey,
		UseFunc:        p.KeyUse.Use,
		FailFunc:       authFailure(errs),
		Logger:         p.Logger,
		HandlerOptions: opts,
	})

	mux := http.NewServeMux()
	mount := func(path string, h http.Handler) { mux.Handle(path, authMW.Wrap(h)) }
	mount(quartersv1connect.NewTenantServiceHandler(tenantsvc.New(tenantsvc.Params{
		DB: p.DB, Jobs: p.Jobs, Password: p.Password, Tenants: p.Tenants, DeletionGrace: p.DeletionGrace,
	}), opts...))
	mount(quartersv1connect.NewProjectServiceHandler(project.New(p.DB, p.Jobs), opts...))
	mount(quartersv1connect.NewDocumentServiceHandler(document.New(p.DB, p.Jobs), opts...))
	mount(quartersv1connect.NewAuthServiceHandler(authsvc.New(authsvc.Params{DB: p.DB, Sessions: p.Sessions, Tenants: p.Tenants, Jobs: p.Jobs, Password: p.Password, Logger: p.Logger}), opts...))
	mount(quartersv1connect.NewMemberServiceHandler(member.New(member.Params{DB: p.DB, Sessions: p.Sessions, Tenants: p.Tenants, Jobs: p.Jobs, Password: p.Password, Logger: p.Logger}), opts...))
	mount(quartersv1connect.NewPlanServiceHandler(plan.New(p.DB), opts...))
	platformSvc := platform.New(p.DB, p.Tenants, p.Jobs, p.Cost)
	platformSvc.DeletionGrace = p.DeletionGrace
	mount(quartersv1connect.NewPlatformServiceHandler(platformSvc, opts...))
	mount(quartersv1connect.NewAnalyticsServiceHandler(analytics.New(p.DB, p.Usage, p.Cost), opts...))
	mount(quartersv1connect.NewWebhookServiceHandler(webhooksvc.New(webhooksvc.Params{DB: p.DB, Jobs: p.Jobs, AllowLoopback: p.WebhookAllowLoopback}), opts...))

	names := make([]string, 0, len(Services()))
	for _, s := range Services() {
		names = append(names, string(s.FullName()))
	}
	mux.Handle(grpchealth.NewHandler(&healthChecker{db: p.DB, services: names}))
	// Health is listed too, so grpcurl and grpc-health-probe users can
	// find it and describe it.
	reflector := grpcreflect.NewStaticReflector(append(names, grpchealth.HealthV1ServiceName)...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))

	// An export's archive: the link from GetTenantExport is its own
	// credential, so it is served outside the authentication middleware.
	mux.Handle(export.DownloadPattern, export.DownloadHandler(p.DB, p.Logger))
	mux.Handle("GET /openapi.yaml", openapi.Handler())
	// The tenant console signs in through the API like any client: it
	// needs no credential to load.
	consoleHandler := console.Handler()
	mux.Handle(console.Path, consoleHandler)
	mux.Handle(console.Path+"/", consoleHandler)
	mux.Handle("GET /docs", openapi.DocsHandler())
	mux.Handle("GET /docs/", openapi.DocsHandler())
	// The keys that verify access tokens, for services that check them on
	// their own; read per request, so a reloaded or rotated set shows at once.
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		p.Sessions.Keys().JWKSHandler().ServeHTTP(w, r)
	})
	if p.Metrics != nil {
		// The series name the busiest tenants, so a configured platform
		// credential guards them like PlatformService; without one the
		// operator has chosen an open server (development).
		mux.Handle("GET "+metrics.Path, p.Metrics.Handler(p.PlatformKey))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ping(r.Context(), p.DB); err != nil {
			p.Logger.WarnContext(r.Context(), "not ready", "error", err)
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprintln(w, "ok")
	})

	services := make(map[string]bool, len(names))
	for _, n := range names {
		services[n] = true
	}
	handler := tenant.SelectorMiddleware(p.BaseDomain, guard.Body(guard.BodyParams{
		MaxBytes: p.MaxBodyBytes,
		Timeout:  p.BodyTimeout,
		// Every quarters.v1 RPC is unary: its body is read in full before
		// the handler runs. Reflection streams are not held to it.
		Deadline: func(r *http.Request) bool {
			procedure, _ := authn.InferProcedure(r.URL)
			_, ok := rules[procedure]
			return ok
		},
	}, mux))
	// Outside authentication, so a mistyped procedure is answered as one
	// rather than with a request for a credential; inside CORS, so a
	// browser may read the answer.
	handler = httperr.Middleware(httperr.Params{
		IsProcedure: func(path string) bool { _, ok := rules[path]; return ok },
		IsService:   func(name string) bool { return services[name] },
		Catalog:     "/docs (and /openapi.yaml)",
	}, handler)
	return observe.Middleware(p.Logger, p.TrustedProxies, corsHandler(p.CORSOrigins).Handler(handler)), nil
}

// authFailure maps a credential that could not be checked through the one
// error table: an unreachable database is UNAVAILABLE and logged once per
// outage, as in handlers; anything else is UNAVAILABLE too (the call may
// work on retry) but logged, as an internal error would be.
func authFailure(errs *observe.Errors) func(ctx context.Context, procedure string, err error) error {
	return func(ctx context.Context, procedure string, err error) error {
		mapped := errs.Map(ctx, procedure, err)
		if connect.CodeOf(mapped) == connect.CodeInternal {
			return connect.NewError(connect.CodeUnavailable, errors.New("authentication is temporarily unavailable; retry shortly"))
		}
		return mapped
	}
}

// verifyFunc checks access tokens: Quarters' own, and the identity
// provider's when one is configured.
func verifyFunc(p Params) auth.VerifyTokenFunc {
	own := p.Sessions.VerifyFunc(p.Tenants)
	if p.IDP == nil {
		return own
	}
	return p.IDP.VerifyFunc(idp.VerifyParams{
		Resolve: func(ctx context.Context, selector string) (uuid.UUID, error) {
			id, err := p.DB.TenantResolve(ctx, selector)
			if errors.Is(err, db.ErrNotFound) {
				return id, idp.ErrUnknownTenant
			}
			return id, err
		},
		Tenants: p.Tenants,
		Next:    own,
	})
}

// interceptors is the production chain. The first interceptor is the
// outermost: errors and logging see everything; the tenant is bound before
// anything needs its plan; the rate limit and the monthly quota come before
// any real work; only calls that may proceed have their messages validated.
func interceptors(p Params, rules access.Rules, errs *observe.Errors, spans tracingInterceptors) []connect.Interceptor {
	var chain []connect.Interceptor
	if spans.outer != nil {
		// Outermost, so the span covers the whole chain.
		chain = append(chain, spans.outer)
	}
	if p.Metrics != nil {
		// Outside observe, so it counts the codes clients receive.
		chain = append(chain, p.Metrics.Interceptor())
	}
	chain = append(chain,
		observe.NewInterceptor(errs),
		tenant.NewInterceptor(p.Tenants, rules.WhileDeleting),
	)
	if spans.tenant != nil {
		chain = append(chain, spans.tenant)
	}
	if p.Cost != nil {
		// Before metrics' tenant interceptor, which shares its meter.
		chain = append(chain, metering.NewCostInterceptor(p.Cost))
	}
	if p.Metrics != nil {
		chain = append(chain, p.Metrics.TenantInterceptor())
	}
	if !p.DisableRateLimit {
		chain = append(chain, ratelimit.NewInterceptor(ratelimit.InterceptorParams{
			Limiter:    p.Limiter,
			PolicyFunc: ratePolicy(rules, p.AnonymousLimit),
			CostFunc:   rules.Cost,
			UpgradeURL: p.UpgradeURL,
			DecisionFunc: func(ctx context.Context, procedure string, r ratelimit.Result) {
				if t, ok := tenancy.FromContext(ctx); ok && !r.Allowed {
					p.Usage.Record(t.ID, procedure, true)
				}
			},
			Logger: p.Logger,
		}), ratelimit.NewAccountInterceptor(ratelimit.AccountParams{
			Limiter:     p.Limiter,
			Limit:       p.AccountLimit,
			AccountFunc: rules.Account,
			ClientFunc:  observe.ClientIP,
			Logger:      p.Logger,
		}))
	}
	return append(chain,
		metering.NewInterceptor(p.Usage),
		access.NewInterceptor(rules, p.UpgradeURL),
		input.NewGrammarInterceptor(),
		input.NewInterceptor(),
		validate.NewInterceptor(),
	)
}

// tracingInterceptors are the tracing parts of the chain, nil without a
// tracer provider.
type tracingInterceptors struct{ outer, tenant connect.Interceptor }

// ratePolicy limits each tenant by its plan's effective rate, and public
// RPCs by client address, one bucket per procedure, whatever credential
// rides along: an API key attached to SignIn must not move password
// guesses into its tenant's large bucket (nor many free tenants' keys
// multiply them). Which RPCs are public comes from their access rules, so
// a new public RPC is covered without being listed here. Sign-up,
// sign-in, invitations and the email-proof RPCs get the anonymous limit;
// session upkeep (RefreshToken, SignOut), which every signed-in client
// does every few minutes, gets
// sessionFactor times it, so an office behind one address keeps its
// sessions. The platform operator is not limited.
func ratePolicy(rules access.Rules, anonymous ratelimit.Limit) func(ctx context.Context, procedure string) (ratelimit.Policy, bool) {
	upkeep := ratelimit.Limit{Rate: anonymous.Rate * sessionFactor, Burst: anonymous.Burst * sessionFactor, Period: anonymous.Period}
	return func(ctx context.Context, procedure string) (ratelimit.Policy, bool) {
		if rules.IsPublic(procedure) {
			limit := anonymous
			if sessionUpkeep[procedure] {
				limit = upkeep
			}
			return ratelimit.Policy{Key: "anonymous:" + procedure + ":" + addressKey(observe.ClientIP(ctx)), Limit: limit}, true
		}
		if t, ok := tenancy.FromContext(ctx); ok {
			return tenantPolicy(t), true
		}
		return ratelimit.Policy{}, false
	}
}

// addressKey is the part of a client address that one client controls:
// the address itself for IPv4, its /64 for IPv6, since a single host is
// routinely given a whole /64 and could otherwise rotate through 2^64
// buckets. Calls without an address (never, over TCP) share one bucket.
func addressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	switch {
	case err != nil:
		if ip == "" {
			return "unknown"
		}
		return ip
	case a.Is6() && !a.Is4In6():
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.Unmap().String()
}

// sessionFactor is how many times the anonymous limit session upkeep gets.
const sessionFactor = 10

var sessionUpkeep = map[string]bool{
	quartersv1connect.AuthServiceRefreshTokenProcedure: true,
	quartersv1connect.AuthServiceSignOutProcedure:      true,
}

func tenantPolicy(t tenancy.Tenant) ratelimit.Policy {
	return ratelimit.Policy{
		// The limit is part of the key: a plan change starts a fresh
		// bucket instead of holding an upgraded tenant to its old pace.
		Key:   fmt.Sprintf("tenant:%s:%d:%d", t.ID, t.Limits.RequestsPerMinute, t.Limits.Burst),
		Limit: ratelimit.PerMinute(int(t.Limits.RequestsPerMinute), int(t.Limits.Burst)),
		Plan:  t.Plan,
	}
}

// corsHandler lets browsers call the API from other origins: Connect's,
// gRPC-Web's and Quarters' own headers are allowed and exposed (the rate
// limit state, the request id), and preflights are cached for two hours.
func corsHandler(origins []string) *cors.Cors {
	if len(origins) == 0 {
		origins = []string{"*"}
	}
	return cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: connectcors.AllowedMethods(),
		AllowedHeaders: append(connectcors.AllowedHeaders(), "Authorization", tenant.HeaderName, observe.RequestIDHeader),
		ExposedHeaders: append(append(connectcors.ExposedHeaders(), ratelimit.HeaderNames()...), observe.RequestIDHeader, tenant.HeaderPropagationDelay),
		MaxAge:         7200,
	})
}

// ping bounds the readiness check so a hung database reads as not ready.
func ping(ctx context.Context, d *db.DB) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return d.Ping(ctx)
}

// healthChecker answers gRPC health checks: serving while the database
// answers. An empty service name asks about the server as a whole.
type healthChecker struct {
	db       *db.DB
	services []string
}

func (h *healthChecker) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	known := req.Service == ""
	for _, s := range h.services {
		known = known || s == req.Service
	}
	if !known {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("unknown service %q", req.Service))
	}
	if err := ping(ctx, h.db); err != nil {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
}

// recoverFunc turns a handler panic into an opaque INTERNAL, logged with the
// stack, instead of a dropped connection.
func recoverFunc(logger *slog.Logger) func(context.Context, connect.Spec, http.Header, any) error {
	return func(ctx context.Context, spec connect.Spec, _ http.Header, r any) error {
		rid := observe.RequestID(ctx)
		logger.ErrorContext(ctx, "panic", "request_id", rid, "procedure", spec.Procedure, "panic", r, "stack", string(debug.Stack()))
		return connect.NewError(connect.CodeInternal, errors.New("internal error (request id "+rid+")"))
	}
}
