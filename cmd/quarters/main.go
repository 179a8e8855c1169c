// Command quarters runs the Quarters API server, and administers it.
//
//	quarters [serve]    run the server (config.go lists the environment it reads)
//	quarters migrate    apply database migrations as the schema owner
//	quarters version    print the version, commit and Go version
//	quarters tenants …  list, show, set-plan, suspend, resume (PlatformService)
//	quarters audit      list the audit records of platform changes
//	quarters help       all of the above, and every environment variable
//
// With no DATABASE_URL the server starts a private PostgreSQL from the
// locally installed binaries in QUARTERS_DATA_DIR, so one command gives a
// working server on a fresh machine.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/db/embedded"
	"github.com/quarters-dev/quarters/internal/app"
	"github.com/quarters-dev/quarters/internal/guard"
	"github.com/quarters-dev/quarters/internal/idp"
	"github.com/quarters-dev/quarters/internal/mail"
	"github.com/quarters-dev/quarters/internal/ratelimit"
	"github.com/quarters-dev/quarters/internal/router"
	"github.com/quarters-dev/quarters/internal/tenant"
	"github.com/quarters-dev/quarters/internal/tracing"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func serve(ctx context.Context, cfg config, logger *slog.Logger, out io.Writer) error {
	// Bind first: a busy port fails at once, before a database is started
	// or migrated for nothing.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	// Trusted proxies carry many clients' connections: the cap is for
	// clients that connect directly.
	ln = guard.Listener(ln, guard.ListenerParams{MaxPerIP: cfg.MaxConnsPerIP, Exempt: cfg.TrustedProxies.Contains, Logger: logger})

	appURL := cfg.DatabaseURL
	if appURL == "" {
		emb, err := embedded.Start(ctx, embedded.Opts{DataDir: cfg.DataDir, Logger: logger})
		if err != nil {
			return err
		}
		defer func() {
			if err := emb.Stop(context.WithoutCancel(ctx)); err != nil {
				logger.Error("stop embedded postgres", "error", err)
			}
		}()
		if err := emb.EnsureDatabase(ctx, "quarters"); err != nil {
			return err
		}
		if err := db.Migrate(ctx, emb.OwnerURL("quarters")); err != nil {
			return err
		}
		appURL = emb.AppURL("quarters")
		logger.Info("embedded postgres ready; migrations applied", "data_dir", cfg.DataDir)
	}
	// The tracer provider exists before the pool, whose statements it
	// traces; the app's last loop shuts it down (sending the last spans).
	tp, err := tracing.New(ctx, cfg.OTLPEndpoint, buildVersion())
	if err != nil {
		return err
	}
	dbOpts := &db.OpenOpts{MaxConns: int32(cfg.DBMaxConns), TransactionPooling: cfg.DBTxPooler, ConfigFunc: func(pc *pgxpool.Config) {
		if tp != nil {
			tracing.ConfigurePool(pc, tp)
		} else {
			tracing.ConfigurePool(pc, nil) // a nil *TracerProvider must not become a non-nil interface
		}
	}}
	if tp != nil {
		logger.Info("tracing: exporting spans over OTLP", "endpoint", cfg.OTLPEndpoint)
	}
	if cfg.DBTxPooler {
		logger.Info("database behind a transaction pooler (QUARTERS_DB_POOLER=transaction): no prepared statements, jobs polled for")
	}
	d, err := db.Open(ctx, appURL, dbOpts)
	if err != nil {
		return err
	}
	defer d.Close()

	var rdb *redis.Client
	if cfg.RedisURL != "" {
		opts, err := redisOptions(cfg)
		if err != nil {
			return err
		}
		redis.SetLogger(redisLogger{logger})
		rdb = redis.NewClient(opts)
		// Closed after the app's loops stop (deferred calls run in
		// reverse): closed under the cache's subscription, it would read
		// as an outage.
		defer rdb.Close()
		logger.Info("redis configured: shared rate limits and tenant cache", "addr", opts.Addr)
	} else {
		// Nothing can tell other replicas of a change: say what that
		// means before anyone runs two.
		logger.Warn("no REDIS_URL: rate limits, the tenant cache and revocations are per process; run one replica, "+
			"or expect each other replica to accept a revoked API key, a removed member's token or a suspended tenant until its cached copy expires",
			"max_stale", tenant.DefaultTTL.String())
	}

	// Mail: SMTP when configured, else the development mailbox (the log,
	// and files in QUARTERS_MAILBOX_DIR).
	var sender mail.Sender
	if cfg.SMTPURL != "" {
		if sender, err = mail.NewSMTP(mail.SMTPParams{URL: cfg.SMTPURL, From: cfg.MailFrom}); err != nil {
			return err
		}
		logger.Info("mail goes out over SMTP", "from", cfg.MailFrom)
	} else {
		box, err := mail.NewMailbox(logger, cfg.MailboxDir)
		if err != nil {
			return err
		}
		sender = box
		logger.Warn("no QUARTERS_SMTP_URL: mails are logged (with their links) and written to the development mailbox, not sent", "dir", cfg.MailboxDir)
	}
	linkURL := cfg.AppURL
	if linkURL == "" {
		linkURL = "http://" + ln.Addr().String()
	}
	var provider *idp.Verifier
	if cfg.IDP.Issuer != "" {
		if provider, err = idp.New(cfg.IDP, &idp.Opts{Logger: logger}); err != nil {
			return err
		}
		logger.Info("accepting identity provider tokens", "issuer", cfg.IDP.Issuer, "jwks_url", cfg.IDP.JWKSURL)
	}
	if cfg.WebhookLoopback {
		logger.Warn("webhooks may be delivered to loopback (QUARTERS_WEBHOOK_LOOPBACK=on): for development only")
	}
	if cfg.RateLimitOff {
		logger.Warn("rate limiting is OFF (QUARTERS_RATE_LIMIT=off): for benchmarks only")
	}
	a, err := app.New(ctx, app.Config{
		DB: d, Logger: logger, Redis: rdb, RateLimitTimeout: cfg.RateLimitTimeout,
		Mail: sender, LinkURL: linkURL, IDP: provider,
		TokenRotation: cfg.TokenRotation, JobStopTimeout: cfg.ShutdownTimeout,
		MetricsTopTenants: cfg.TopTenants, TracerProvider: tp,
		Router: router.Settings{
			BaseDomain: cfg.BaseDomain, MaxBodyBytes: cfg.MaxBodyBytes, BodyTimeout: cfg.BodyTimeout,
			UpgradeURL: cfg.UpgradeURL, CORSOrigins: cfg.CORSOrigins,
			PlatformKey: cfg.PlatformKey, DisableRateLimit: cfg.RateLimitOff,
			AnonymousLimit: anonymousLimit(cfg.SignupRate), AccountLimit: accountLimit(cfg.AccountRate),
			TrustedProxies: cfg.TrustedProxies, WebhookAllowLoopback: cfg.WebhookLoopback,
			DeletionGrace: cfg.DeletionGrace,
		},
	})
	if err != nil {
		return err
	}
	// The background loops stop after the HTTP server has drained, so the
	// last calls are still counted and their mails worked.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	loops := make(chan error, 1)
	go func() { loops <- a.Run(bg) }()

	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // h2c, for gRPC without TLS
	srv := &http.Server{
		Handler:           a.Handler(),
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		// The outer bound for streams (gRPC reflection); an RPC's body
		// has its own, far shorter deadline (QUARTERS_BODY_TIMEOUT).
		ReadTimeout:    60 * time.Second,
		WriteTimeout:   60 * time.Second,
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("listening", "addr", ln.Addr().String())
	printWelcome(out, ln.Addr().String())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		stopBG()
		return errors.Join(err, a.Close())
	case err := <-loops:
		// A loop failed (the job workers could not start): stop serving.
		_ = srv.Close()
		return err
	case <-ctx.Done():
	}
	// Stop accepting, let in-flight calls finish (bounded), then stop the
	// loops (last flushes) and return so the deferred closes run in order:
	// Redis, pool, then embedded postgres.
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	shutdownErr := srv.Shutdown(sctx)
	stopBG()
	if err := a.Close(); err != nil {
		return err
	}
	if shutdownErr != nil {
		return fmt.Errorf("shutdown: %w", shutdownErr)
	}
	logger.Info("stopped")
	return nil
}

// redisOptions parses REDIS_URL with timeouts fitted to a limiter that
// sits in front of every request: an unreachable Redis degrades to
// in-process limiting quickly instead of stalling calls (the URL may
// still override them).
func redisOptions(cfg config) (*redis.Options, error) {
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	if opts.DialTimeout == 5*time.Second {
		opts.DialTimeout = 500 * time.Millisecond
	}
	if opts.ReadTimeout == 3*time.Second {
		t := max(200*time.Millisecond, cfg.RateLimitTimeout)
		opts.ReadTimeout, opts.WriteTimeout = t, t
	}
	// Let deadlines on contexts bound each command (the limiter's
	// ratelimit.DefaultFailoverTimeout), instead of the failover
	// abandoning goroutines stuck in I/O.
	opts.ContextTimeoutEnabled = true
	return opts, nil
}

// printWelcome prints a curl line that works as pasted: it signs up a tenant
// with a fresh slug and returns its first API key.
func printWelcome(out io.Writer, addr string) {
	var b [3]byte
	_, _ = rand.Read(b[:])
	fmt.Fprintf(out, `Quarters is listening on http://%[1]s

Sign up a tenant (the response holds its API key, apiKeySecret):

  curl -sS http://%[1]s/quarters.v1.TenantService/CreateTenant \
    -H 'Content-Type: application/json' \
    -d '{"slug":"demo-%[2]s","name":"Demo","ownerEmail":"you@example.com"}'

The owner's link to set a password is mailed to ownerEmail (with no
QUARTERS_SMTP_URL: logged, and written to QUARTERS_MAILBOX_DIR).

Then call the API with it:

  curl -sS http://%[1]s/quarters.v1.ProjectService/ListProjects \
    -H 'Content-Type: application/json' -H "Authorization: Bearer $KEY" -d '{}'

`, addr, hex.EncodeToString(b[:]))
}

// redisLogger sends go-redis's own messages (dial failures while Redis is
// down) to the structured log instead of bare stderr.
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.WarnContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}

// accountLimit is the per-account limit of sign-in attempts: the
// configured hourly rate with a burst of at most 10, or the router's
// default.
func accountLimit(perHour int) ratelimit.Limit {
	if perHour <= 0 {
		return router.DefaultAccountLimit
	}
	return ratelimit.Limit{Rate: perHour, Period: time.Hour, Burst: min(perHour, 10)}
}

// anonymousLimit is the per-address limit of unauthenticated calls: the
// configured rate with an equal burst, or the router's default.
func anonymousLimit(perMinute int) ratelimit.Limit {
	if perMinute <= 0 {
		return router.DefaultAnonymousLimit
	}
	return ratelimit.PerMinute(perMinute, perMinute)
}
