// Package servertest runs a real Quarters server for tests: the production
// handler from package router over httptest (HTTP/1.1 and h2c), on a fresh
// database of its own, with helpers to sign up tenants and call the API as
// them through the generated Connect clients. Import it only from tests.
package servertest

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/db/dbtest"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/app"
	"github.com/quarters-dev/quarters/internal/guard"
	"github.com/quarters-dev/quarters/internal/idp"
	"github.com/quarters-dev/quarters/internal/jobs"
	"github.com/quarters-dev/quarters/internal/mail"
	"github.com/quarters-dev/quarters/internal/metering"
	"github.com/quarters-dev/quarters/internal/notify"
	"github.com/quarters-dev/quarters/internal/observe"
	"github.com/quarters-dev/quarters/internal/password"
	"github.com/quarters-dev/quarters/internal/ratelimit"
	"github.com/quarters-dev/quarters/internal/router"
	"github.com/quarters-dev/quarters/internal/session"
	"github.com/quarters-dev/quarters/internal/tenant"
	"github.com/quarters-dev/quarters/internal/tracing"
)

// BaseDomain is the tenant subdomain suffix test servers use.
const BaseDomain = "quarters.test"

// LinkURL is the base of the links in test servers' mails.
const LinkURL = "https://app.quarters.test"

// Server is a running test server.
type Server struct {
	URL      string
	DB       *db.DB
	OwnerURL string // the test database's owner, for setting up states the API cannot
	Tenants  *tenant.Cache
	Usage    *metering.Usage
	KeyUse   *metering.KeyUse
	// Cost holds the calls' per-tenant cost until its flush.
	Cost *metering.Cost
	// Limiter is the server's rate limiter: a *ratelimit.Failover over
	// Redis when Opts.Redis is set, else a *ratelimit.Local.
	Limiter ratelimit.Limiter
	// PlatformKey is the server's platform credential; Platform sends it.
	PlatformKey string
	// Sessions signs and checks the server's access tokens.
	Sessions *session.Manager
	// Keys keeps Sessions' key set in step with the database's; Reload
	// and Rotate act at once, where production waits for its loop.
	Keys *session.KeyStore
	// Mailbox holds every mail the server's mail worker sent to the
	// development mailbox (shared with a second replica from Opts.Share,
	// since either replica's worker may deliver a mail).
	Mailbox *Mailbox
	// Jobs enqueues and works the server's background jobs.
	Jobs *jobs.Client
	// LinkURL is the base of the links in the server's mails.
	LinkURL string
	// Handler is the server's whole HTTP handler, for benchmarks that
	// measure the server's own allocations without a client's.
	Handler http.Handler
	appURL  string
	HTTP    *http.Client // HTTP/1.1
	H2C     *http.Client // HTTP/2 without TLS, as gRPC clients use
	slugs   atomic.Int64

	tenantLoads atomic.Int64
}

// Opts adjust New; nil means defaults.
type Opts struct {
	// Logger receives the server's logs (default: discarded, or warnings
	// and errors into the test log with -v).
	Logger *slog.Logger
	// Redis, when set, shares rate limits and the tenant cache (with
	// pub/sub invalidation) the way production replicas do.
	Redis *redis.Options
	// AnonymousLimit overrides the per-address limit of public RPCs; by
	// default tests may sign up as many tenants as they like.
	AnonymousLimit ratelimit.Limit
	// AccountLimit overrides the per-account limit of sign-in attempts;
	// by default tests may sign in as often as they like.
	AccountLimit ratelimit.Limit
	// TrustedProxies are believed in X-Forwarded-For; tests that simulate
	// many client addresses trust 127.0.0.1 and set the header.
	TrustedProxies observe.TrustedProxies
	// MaxConnsPerIP caps each client address's open connections
	// (guard.Listener); zero: no cap, as tests open many from 127.0.0.1.
	MaxConnsPerIP int
	// BodyTimeout is how long a request body may take (router.Params).
	BodyTimeout time.Duration
	// Share, when set, serves the same database as that server: a second
	// replica.
	Share *Server
	// Database, when set, is served instead of a fresh database of the
	// shared test cluster: a private cluster the test can stop.
	Database *dbtest.Private
	// PgBouncer serves the database through a private PgBouncer in
	// transaction mode (dbtest.NewPgBouncer), with the server configured
	// as QUARTERS_DB_POOLER=transaction configures it. A second replica
	// (Share) goes through the same PgBouncer.
	PgBouncer bool
	// JobPollInterval is how often the job workers look for new jobs
	// when not notified (app.Config.JobPollInterval), as behind PgBouncer.
	JobPollInterval time.Duration
	// PlatformKey is the platform credential (default DefaultPlatformKey).
	PlatformKey string
	// Password is the argon2id cost of password hashes (default the cheap
	// Password below; benchmarks of sign-in pass password.Default).
	Password password.Params
	// IDP, when set, accepts an external identity provider's tokens
	// (router.Params.IDP).
	IDP *idp.Verifier
	// Mail, when set, delivers the server's mails instead of the
	// development mailbox (Server.Mailbox then stays empty): e.g. an SMTP
	// sender.
	Mail mail.Sender
	// DBConfigFunc, when set, adjusts the server's pool configuration
	// (db.OpenOpts.ConfigFunc): e.g. dbtest.Wire counting round trips.
	DBConfigFunc func(*pgxpool.Config)
	// RetryPolicy, when set, schedules the retries of failed jobs instead
	// of River's default.
	RetryPolicy river.ClientRetryPolicy
	// MetricsTopTenants is how many tenants get /metrics series of their
	// own (app.Config.MetricsTopTenants).
	MetricsTopTenants int
	// TracerProvider, when set, traces the server's RPCs and statements
	// (tests capture the spans with tracetest).
	TracerProvider *sdktrace.TracerProvider
	// DeletionGrace is how long a deleted tenant waits for its purge
	// (router.Settings.DeletionGrace; default a week).
	DeletionGrace time.Duration
}

// DefaultPlatformKey is the platform credential of test servers whose Opts
// set none. It is a test fixture, not a secret.
const DefaultPlatformKey = "servertest-platform-key-0123456789abcdef"

// New starts a server on a fresh database; it stops at test cleanup.
func New(t testing.TB) *Server { return NewWith(t, nil) }

// NewWith is New with options.
func NewWith(t testing.TB, opts *Opts) *Server {
	t.Helper()
	if opts == nil {
		opts = &Opts{}
	}
	var appURL, ownerURL string
	switch {
	case opts.Share != nil:
		appURL, ownerURL = opts.Share.appURL, opts.Share.OwnerURL
	case opts.Database != nil:
		appURL, ownerURL = opts.Database.AppURL, opts.Database.OwnerURL
	default:
		appURL, ownerURL = dbtest.NewURLs(t)
	}
	txPooling := opts.PgBouncer
	switch {
	case opts.Share != nil:
		txPooling = opts.Share.DB.TransactionPooling()
	case opts.PgBouncer:
		// Fewer server connections than the server's pool and River's
		// together: they take turns on each, as behind a real PgBouncer.
		appURL = dbtest.NewPgBouncer(t, appURL, &dbtest.PgBouncerOpts{PoolSize: 4}).URL(appURL)
	}
	// The statement tracers as the command sets them (cost always, spans
	// with a tracer provider).
	configFunc := func(cfg *pgxpool.Config) {
		if opts.TracerProvider != nil {
			tracing.ConfigurePool(cfg, opts.TracerProvider)
		} else {
			tracing.ConfigurePool(cfg, nil)
		}
		if opts.DBConfigFunc != nil {
			opts.DBConfigFunc(cfg)
		}
	}
	d, err := db.Open(context.Background(), appURL, &db.OpenOpts{MaxConns: 8, ConfigFunc: configFunc, TransactionPooling: txPooling})
	require.NoError(t, err)
	t.Cleanup(d.Close)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if opts.Logger != nil {
		logger = opts.Logger
	}
	srv := &Server{}
	var rdb *redis.Client
	if opts.Redis != nil {
		quietOnce.Do(func() { redis.SetLogger(quietRedis{}) }) // outage tests would flood the output
		ro := *opts.Redis
		ro.ContextTimeoutEnabled = true // as production sets it
		rdb = redis.NewClient(&ro)
	}
	anonymous := opts.AnonymousLimit
	if anonymous.Rate == 0 {
		anonymous = ratelimit.PerMinute(1000000, 100000)
	}
	account := opts.AccountLimit
	if account.Rate == 0 {
		account = ratelimit.PerMinute(1000000, 100000)
	}
	platformKey := opts.PlatformKey
	if platformKey == "" {
		platformKey = DefaultPlatformKey
	}
	// The mail worker runs as in production, so tests read what it sent.
	var box *Mailbox
	if opts.Share != nil {
		box = opts.Share.Mailbox
	} else {
		devBox, err := mail.NewMailbox(logger, "")
		require.NoError(t, err)
		box = &Mailbox{box: devBox, taken: map[int]bool{}}
	}
	var sender mail.Sender = box.box
	if opts.Mail != nil {
		sender = opts.Mail
	}
	var jobPool *pgxpool.Pool
	if opts.DBConfigFunc != nil {
		// River polls the database on its own schedule: a pool of its own
		// keeps that traffic out of what the caller counts.
		jobCfg, err := pgxpool.ParseConfig(appURL)
		require.NoError(t, err)
		if txPooling {
			require.NoError(t, db.ConfigureTransactionPooling(jobCfg, appURL))
		}
		jobPool, err = pgxpool.NewWithConfig(context.Background(), jobCfg)
		require.NoError(t, err)
		t.Cleanup(jobPool.Close)
	}
	// The same assembly as the command's (internal/app), so a setting or
	// a background loop cannot exist in one and not the other.
	a, err := app.New(context.Background(), app.Config{
		DB: d, Logger: logger, Redis: rdb,
		// Above production's timeout: tests run under -race on shared
		// cores, where a healthy Redis can take longer, and a decision
		// answered locally would make "replicas share one limit" flaky.
		RateLimitTimeout: 250 * time.Millisecond,
		Mail:             sender, LinkURL: LinkURL, IDP: opts.IDP,
		JobPool: jobPool, JobRetryPolicy: opts.RetryPolicy, JobStopTimeout: 30 * time.Second,
		JobPollInterval:   opts.JobPollInterval,
		OnTenantLoad:      func() { srv.tenantLoads.Add(1) },
		MetricsTopTenants: opts.MetricsTopTenants,
		TracerProvider:    opts.TracerProvider,
		Router: router.Settings{
			BaseDomain: BaseDomain, PlatformKey: platformKey, AnonymousLimit: anonymous, AccountLimit: account,
			TrustedProxies: opts.TrustedProxies, BodyTimeout: opts.BodyTimeout,
			Password: cmp.Or(opts.Password, Password),
			// Tests' webhook receivers are httptest servers on loopback.
			WebhookAllowLoopback: true,
			DeletionGrace:        opts.DeletionGrace,
		},
	})
	require.NoError(t, err)
	bg, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- a.Run(bg) }()
	// Cleanups run last-registered first: the HTTP server (registered
	// below) closes, then the loops stop (last flushes), then Redis and
	// the pool (registered above) close.
	t.Cleanup(func() {
		if rdb != nil {
			_ = rdb.Close()
		}
	})
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("servertest: background loops: %v", err)
		}
	})
	h := a.Handler()
	ts := httptest.NewUnstartedServer(h)
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	ts.Config.Protocols = &protocols
	ts.Listener = guard.Listener(ts.Listener, guard.ListenerParams{MaxPerIP: opts.MaxConnsPerIP, Logger: logger})
	ts.Start()
	t.Cleanup(ts.Close)
	// Every host name dials the test server, so tests can call
	// http://<slug>.quarters.test:<port> to exercise subdomain selection.
	addr := ts.Listener.Addr().String()
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 64,
	}
	h2c := transport.Clone()
	h2c.Protocols = new(http.Protocols)
	h2c.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(transport.CloseIdleConnections)
	t.Cleanup(h2c.CloseIdleConnections)
	srv.URL, srv.DB, srv.OwnerURL, srv.appURL = ts.URL, d, ownerURL, appURL
	srv.Tenants, srv.Usage, srv.Limiter, srv.KeyUse, srv.Cost = a.Tenants, a.Usage, a.Limiter, a.KeyUse, a.Cost
	srv.PlatformKey, srv.Sessions, srv.Keys = platformKey, a.Sessions, a.Keys
	srv.Mailbox, srv.Jobs, srv.LinkURL = box, a.Jobs, LinkURL
	srv.HTTP = &http.Client{Transport: transport}
	srv.Handler = h
	srv.H2C = &http.Client{Transport: h2c}
	return srv
}

// TenantLoads is how many times the server's tenant cache has read a
// tenant record from the database: a cache that drops everything shows as
// a load per call.
func (s *Server) TenantLoads() int64 { return s.tenantLoads.Load() }

// Exec runs SQL as the database owner (no row-level security), then drops
// tenantID's cached record, as the platform does after changing a tenant.
func (s *Server) Exec(t testing.TB, tenantID, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), s.OwnerURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
	require.NoError(t, s.Tenants.Invalidate(context.Background(), uuid.MustParse(tenantID)))
}

// SetPlan moves a tenant to another plan.
func (s *Server) SetPlan(t testing.TB, tenantID, plan string) {
	t.Helper()
	s.Exec(t, tenantID, "update tenants set plan = $2 where id = $1", tenantID, plan)
}

// Unthrottle lifts a tenant's rate limit (an override, keeping its plan),
// for tests that make many calls on purpose.
func (s *Server) Unthrottle(t testing.TB, tenantID string) {
	t.Helper()
	s.Exec(t, tenantID, `insert into tenant_overrides (tenant_id, requests_per_minute, burst)
		values ($1, 1000000, 100000)
		on conflict (tenant_id) do update set requests_per_minute = 1000000, burst = 100000`, tenantID)
}

// SubdomainURL is the server's URL under <sub>.<BaseDomain>.
func (s *Server) SubdomainURL(sub string) string {
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(s.URL, "http://"))
	return "http://" + sub + "." + BaseDomain + ":" + port
}

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// Password is the argon2id cost of test servers: far cheaper than
// password.Default, so tests under -race sign in quickly. The production
// cost is measured by password's BenchmarkHash.
var Password = password.Params{Memory: 256, Time: 1, Threads: 1}

// OwnerPassword is the owner's password of every tenant SignUp creates.
const OwnerPassword = "servertest owner password"

// Tenant is a signed-up tenant and clients that call as it.
type Tenant struct {
	ID, Slug, Key string
	// Server is the server the clients call.
	Server *Server
	// OwnerEmail is the owner's email; Owner is the owner's session from
	// sign-up (set by SignUp only).
	OwnerEmail string
	Owner      *quartersv1.Session
	Members    quartersv1connect.MemberServiceClient
	Tenants    quartersv1connect.TenantServiceClient
	Projects   quartersv1connect.ProjectServiceClient
	Documents  quartersv1connect.DocumentServiceClient
	Plans      quartersv1connect.PlanServiceClient
	Auth       quartersv1connect.AuthServiceClient
	Analytics  quartersv1connect.AnalyticsServiceClient
}

// SignUp creates a tenant with a unique slug, whose owner (a new user,
// password OwnerPassword) has verified their email with the mailed link
// and is signed in, and returns clients that authenticate with its sign-up
// key (an admin API key).
func (s *Server) SignUp(t testing.TB) *Tenant {
	t.Helper()
	slug := fmt.Sprintf("tenant-%d-%d", s.slugs.Add(1), rndSuffix())
	email := "owner@" + slug + ".example"
	resp, err := s.Anonymous().CreateTenant(context.Background(), connect.NewRequest(&quartersv1.CreateTenantRequest{
		Slug: slug, Name: "Tenant " + slug, OwnerEmail: email, OwnerPassword: OwnerPassword,
	}))
	require.NoError(t, err)
	tn := resp.Msg.GetTenant()
	require.Equal(t, slug, tn.GetSlug())
	require.Nil(t, resp.Msg.GetSession(), "sign-up signs nobody in")
	s.VerifyEmail(t, email)
	out := s.As(tn.GetId(), slug, resp.Msg.GetApiKeySecret())
	out.OwnerEmail, out.Owner = email, s.SignIn(t, email, OwnerPassword, slug)
	return out
}

// VerifyEmail verifies email with the next verification link mailed to
// it.
func (s *Server) VerifyEmail(t testing.TB, email string) {
	t.Helper()
	_, token := s.Mailbox.Wait(t, email, notify.SubjectVerify)
	_, err := s.As("", "", "").Auth.VerifyEmail(context.Background(), connect.NewRequest(&quartersv1.VerifyEmailRequest{Token: token}))
	require.NoError(t, err)
}

// SignIn signs email in to tenant (slug or id) and returns the session.
func (s *Server) SignIn(t testing.TB, email, password, tenant string) *quartersv1.Session {
	t.Helper()
	resp, err := s.As("", "", "").Auth.SignIn(context.Background(), connect.NewRequest(&quartersv1.SignInRequest{
		Email: email, Password: password, Tenant: tenant,
	}))
	require.NoError(t, err)
	require.NotEmpty(t, resp.Msg.GetSession().GetAccessToken())
	return resp.Msg.GetSession()
}

// AsUser returns clients that send the session's access token. (As with
// an empty key returns clients that send no credential.)
func (s *Server) AsUser(sess *quartersv1.Session, opts ...connect.ClientOption) *Tenant {
	return s.As(sess.GetTenantId(), sess.GetTenantSlug(), sess.GetAccessToken(), opts...)
}

// As returns clients that send key as the bearer credential.
func (s *Server) As(id, slug, key string, opts ...connect.ClientOption) *Tenant {
	return s.AsAt(s.URL, id, slug, key, opts...)
}

// AsAt is As with another base URL, such as a SubdomainURL.
func (s *Server) AsAt(baseURL, id, slug, key string, opts ...connect.ClientOption) *Tenant {
	opts = append([]connect.ClientOption{connect.WithInterceptors(Bearer(key))}, opts...)
	return &Tenant{
		ID: id, Slug: slug, Key: key, Server: s,
		Tenants:   quartersv1connect.NewTenantServiceClient(s.HTTP, baseURL, opts...),
		Projects:  quartersv1connect.NewProjectServiceClient(s.HTTP, baseURL, opts...),
		Documents: quartersv1connect.NewDocumentServiceClient(s.HTTP, baseURL, opts...),
		Plans:     quartersv1connect.NewPlanServiceClient(s.HTTP, baseURL, opts...),
		Auth:      quartersv1connect.NewAuthServiceClient(s.HTTP, baseURL, opts...),
		Analytics: quartersv1connect.NewAnalyticsServiceClient(s.HTTP, baseURL, opts...),
		Members:   quartersv1connect.NewMemberServiceClient(s.HTTP, baseURL, opts...),
	}
}

// Platform is a PlatformService client that sends the server's platform
// credential.
func (s *Server) Platform(t testing.TB, opts ...connect.ClientOption) quartersv1connect.PlatformServiceClient {
	t.Helper()
	opts = append([]connect.ClientOption{connect.WithInterceptors(Bearer(s.PlatformKey))}, opts...)
	return quartersv1connect.NewPlatformServiceClient(s.HTTP, s.URL, opts...)
}

// Anonymous is a TenantService client without a credential.
func (s *Server) Anonymous(opts ...connect.ClientOption) quartersv1connect.TenantServiceClient {
	return quartersv1connect.NewTenantServiceClient(s.HTTP, s.URL, opts...)
}

// Bearer is a client interceptor that sends key as the bearer credential.
func Bearer(key string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if key != "" {
				req.Header().Set("Authorization", "Bearer "+key)
			}
			return next(ctx, req)
		}
	}
}

// Header is a client interceptor that sets one request header.
func Header(name, value string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set(name, value)
			return next(ctx, req)
		}
	}
}

var suffix atomic.Int64

func rndSuffix() int64 { return suffix.Add(7919) % 100000 }

var quietOnce sync.Once

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}
