// Package app assembles the Quarters server once, for the command and the
// tests alike: New builds every dependency from a Config and the HTTP
// handler on them; Run supervises every background loop (the tenant
// cache's invalidation subscription, usage, key-use and cost flushes, access
// token key rotation, the job workers) with one shape, Run(ctx) error,
// under one errgroup; Close waits for them. Model: wtf's cmd/wtfd Main,
// reused by its tests.
package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/sync/errgroup"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/internal/deletion"
	"github.com/quarters-dev/quarters/internal/export"
	"github.com/quarters-dev/quarters/internal/idp"
	"github.com/quarters-dev/quarters/internal/jobs"
	"github.com/quarters-dev/quarters/internal/mail"
	"github.com/quarters-dev/quarters/internal/metering"
	"github.com/quarters-dev/quarters/internal/metrics"
	"github.com/quarters-dev/quarters/internal/notify"
	"github.com/quarters-dev/quarters/internal/ratelimit"
	"github.com/quarters-dev/quarters/internal/router"
	"github.com/quarters-dev/quarters/internal/session"
	"github.com/quarters-dev/quarters/internal/tenancy"
	"github.com/quarters-dev/quarters/internal/tenant"
	"github.com/quarters-dev/quarters/internal/tracing"
	"github.com/quarters-dev/quarters/internal/webhook"
)

// Config is everything New needs. DB, Mail and LinkURL are required; the
// rest have defaults.
type Config struct {
	// DB is the app role's pool; the caller opens and closes it (after
	// Close).
	DB     *db.DB
	Logger *slog.Logger
	// Redis, when set, shares rate limits, the tenant cache and its
	// invalidations with every replica; the caller closes it (after
	// Close). Nil limits and caches in process.
	Redis *redis.Client
	// RateLimitTimeout bounds a Redis rate-limit decision before the
	// limiter answers locally (default ratelimit.DefaultFailoverTimeout).
	RateLimitTimeout time.Duration
	// Mail delivers the identity flows' mails (SMTP, or the development
	// mailbox).
	Mail mail.Sender
	// LinkURL is the base of the links in mails.
	LinkURL string
	// IDP, when set, also accepts an external identity provider's tokens.
	IDP *idp.Verifier
	// TokenRotation is how often the access-token signing key rotates
	// (default session's).
	TokenRotation time.Duration
	// UsageInterval and KeyUseInterval are how often the counts are
	// flushed (defaults metering's).
	UsageInterval, KeyUseInterval time.Duration
	// CostInterval is how often the per-tenant cost counts are flushed
	// (default metering.DefaultCostInterval).
	CostInterval time.Duration
	// JobPool, when set, is the pool River uses instead of DB's (tests
	// that count the server's own database traffic).
	JobPool *pgxpool.Pool
	// JobRetryPolicy schedules the retries of failed jobs (default
	// River's).
	JobRetryPolicy river.ClientRetryPolicy
	// JobStopTimeout bounds the wait for running jobs at shutdown.
	JobStopTimeout time.Duration
	// JobPollInterval is how often the job workers look for new jobs
	// when they are not notified (behind a transaction pooler, where
	// they poll; default River's, 1s).
	JobPollInterval time.Duration
	// OnTenantLoad, when set, is called each time the tenant cache reads
	// a tenant from the database (tests count them).
	OnTenantLoad func()
	// MetricsTopTenants is how many tenants get /metrics series of their
	// own (default metrics.DefaultTopTenants); the rest share "other".
	MetricsTopTenants int
	// TracerProvider, when set, traces every RPC (tracing.New builds
	// the OTLP one); Run shuts it down when it stops, sending the last spans. The
	// caller sets the same provider on DB's pool (tracing.TracePool) for
	// the statements' spans.
	TracerProvider *sdktrace.TracerProvider
	// Router is the HTTP surface's configuration.
	Router router.Settings
}

// App is an assembled server. Its fields are its parts, for the tests
// that drive them directly (flush now, rotate now).
type App struct {
	Tenants  *tenant.Cache
	Limiter  ratelimit.Limiter
	Usage    *metering.Usage
	KeyUse   *metering.KeyUse
	Cost     *metering.Cost
	Sessions *session.Manager
	Keys     *session.KeyStore
	Jobs     *jobs.Client
	Metrics  *metrics.Metrics

	handler http.Handler
	logger  *slog.Logger
	loops   []loop

	mu      sync.Mutex
	running bool
	done    chan struct{}
	err     error
}

// loop is a background loop: it runs until ctx ends, finishing its own
// work (a last flush) before it returns.
type loop struct {
	name string
	run  func(ctx context.Context) error
}

// New builds the server on cfg. It reads the access-token key set from
// the database, so it fails when the database cannot be reached.
func New(ctx context.Context, cfg Config) (*App, error) {
	switch {
	case cfg.DB == nil:
		return nil, errors.New("app: Config.DB is required")
	case cfg.Mail == nil:
		return nil, errors.New("app: Config.Mail is required")
	case cfg.LinkURL == "":
		return nil, errors.New("app: Config.LinkURL is required (the base of the links in mails)")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	a := &App{logger: logger, done: make(chan struct{})}

	load := cfg.DB.LoadTenant
	if cfg.OnTenantLoad != nil {
		load = func(ctx context.Context, id uuid.UUID) (tenancy.Tenant, error) {
			cfg.OnTenantLoad()
			return cfg.DB.LoadTenant(ctx, id)
		}
	}
	a.Limiter = ratelimit.NewLocal()
	cacheParams := tenant.CacheParams{Load: load, Logger: logger}
	if cfg.Redis != nil {
		cacheParams.Redis = cfg.Redis
		a.Limiter = ratelimit.NewFailover(ratelimit.NewRedis(cfg.Redis), a.Limiter, &ratelimit.FailoverOpts{Logger: logger, Timeout: cfg.RateLimitTimeout})
	}
	a.Tenants = tenant.NewCache(cacheParams)
	a.Usage = metering.NewUsage(cfg.DB, logger, cfg.UsageInterval)
	a.KeyUse = metering.NewKeyUse(cfg.DB, logger, cfg.KeyUseInterval)
	a.Cost = metering.NewCost(cfg.DB, logger, &metering.CostOpts{Interval: cfg.CostInterval})

	// Every replica signs with the key set stored in the database, so each
	// verifies the others' access tokens.
	var err error
	if a.Sessions, err = session.NewManager(session.Params{}); err != nil {
		return nil, err
	}
	if a.Keys, err = session.NewKeyStore(ctx, session.KeyStoreParams{DB: cfg.DB, Manager: a.Sessions, Logger: logger},
		&session.KeyStoreOpts{RotateEvery: cfg.TokenRotation}); err != nil {
		return nil, fmt.Errorf("load access token keys: %w", err)
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, notify.NewWorker(notify.WorkerParams{DB: cfg.DB, Sender: cfg.Mail, LinkURL: cfg.LinkURL, Logger: logger}))
	river.AddWorker(workers, webhook.NewWorker(webhook.WorkerParams{
		DB: cfg.DB, Logger: logger, Client: &webhook.ClientOpts{AllowLoopback: cfg.Router.WebhookAllowLoopback},
	}))
	river.AddWorker(workers, export.NewWorker(cfg.DB, a.Tenants.Get, logger))
	purge := deletion.WorkerParams{DB: cfg.DB, Tenants: a.Tenants, Logger: logger}
	if cfg.Redis != nil { // a nil *redis.Client must not become a non-nil interface
		purge.Redis = cfg.Redis
	}
	river.AddWorker(workers, deletion.NewWorker(purge))
	if a.Jobs, err = jobs.New(jobs.Params{
		Pool: cmp.Or(cfg.JobPool, cfg.DB.Pool()), Workers: workers, Logger: logger,
		RetryPolicy: cfg.JobRetryPolicy, StopTimeout: cfg.JobStopTimeout,
		// LISTEN needs a session of its own, which a transaction pooler
		// does not give.
		PollOnly: cfg.DB.TransactionPooling(), FetchPollInterval: cfg.JobPollInterval,
	}); err != nil {
		return nil, err
	}

	a.Metrics = metrics.New(metrics.Params{Pool: cfg.DB.Pool(), Tenants: a.Tenants, TopTenants: cfg.MetricsTopTenants})
	rp := router.Params{
		DB: cfg.DB, Logger: logger, Tenants: a.Tenants, Limiter: a.Limiter,
		Usage: a.Usage, KeyUse: a.KeyUse, Cost: a.Cost, Sessions: a.Sessions, Jobs: a.Jobs, IDP: cfg.IDP,
		Metrics: a.Metrics, Settings: cfg.Router,
	}
	if cfg.TracerProvider != nil { // a nil *TracerProvider must not become a non-nil interface
		rp.TracerProvider = cfg.TracerProvider
	}
	if a.handler, err = router.New(rp); err != nil {
		return nil, err
	}
	// The order is the shutdown story: every loop ends when Run's context
	// does, each finishing its own last piece of work (the flushes write
	// what was counted; the job workers let running jobs finish).
	a.loops = []loop{
		{"tenant cache subscription", a.Tenants.Run},
		{"usage flush", a.Usage.Run},
		{"key use flush", a.KeyUse.Run},
		{"cost flush", a.Cost.Run},
		{"access token keys", a.Keys.Run},
		{"job workers", a.Jobs.Run},
	}
	if tp := cfg.TracerProvider; tp != nil {
		a.loops = append(a.loops, loop{"trace export", func(ctx context.Context) error {
			<-ctx.Done()
			// The other loops' last work may still trace; a short grace
			// is all an exporter gets at shutdown anyway.
			return tracing.Shutdown(tp, 5*time.Second)
		}})
	}
	return a, nil
}

// Handler is the whole HTTP surface.
func (a *App) Handler() http.Handler { return a.handler }

// Run runs every background loop until ctx ends or one of them fails,
// then waits for all of them to finish, and returns the first failure
// (nil after a clean stop). Cancel ctx after the HTTP server has drained,
// so the last calls are still counted and their jobs worked. Run may be
// called once.
func (a *App) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		return errors.New("app: Run called twice")
	}
	a.running = true
	a.mu.Unlock()
	defer close(a.done)

	g, gctx := errgroup.WithContext(ctx)
	for _, l := range a.loops {
		g.Go(func() error {
			if err := l.run(gctx); err != nil {
				return fmt.Errorf("%s: %w", l.name, err)
			}
			return nil
		})
	}
	a.err = g.Wait()
	if a.err != nil {
		a.logger.Error("background loop failed; stopping", "error", a.err)
	}
	return a.err
}

// Close waits for Run to return (cancel its context first) and returns
// its error. Without Run it does nothing. The caller then closes the DB
// and Redis clients it passed in.
func (a *App) Close() error {
	a.mu.Lock()
	running := a.running
	a.mu.Unlock()
	if !running {
		return nil
	}
	<-a.done
	return a.err
}
