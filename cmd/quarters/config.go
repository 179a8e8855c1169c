package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/quarters-dev/quarters/internal/deletion"
	"github.com/quarters-dev/quarters/internal/guard"
	"github.com/quarters-dev/quarters/internal/idp"
	"github.com/quarters-dev/quarters/internal/mail"
	"github.com/quarters-dev/quarters/internal/metrics"
	"github.com/quarters-dev/quarters/internal/observe"
	"github.com/quarters-dev/quarters/internal/ratelimit"
	"github.com/quarters-dev/quarters/internal/router"
	"github.com/quarters-dev/quarters/internal/session"
	"github.com/quarters-dev/quarters/internal/tracing"
)

// config is the server's configuration, read from the environment only.
type config struct {
	Addr             string        // QUARTERS_ADDR
	DatabaseURL      string        // DATABASE_URL: app role; empty starts embedded postgres
	OwnerDatabaseURL string        // QUARTERS_OWNER_DATABASE_URL: for `quarters migrate`
	DataDir          string        // QUARTERS_DATA_DIR: embedded postgres's data
	BaseDomain       string        // QUARTERS_BASE_DOMAIN: <slug>.<domain> selects a tenant
	MaxBodyBytes     int64         // QUARTERS_MAX_BODY_BYTES
	BodyTimeout      time.Duration // QUARTERS_BODY_TIMEOUT: how long an RPC's body may take, plus its size allowance
	MaxConnsPerIP    int           // QUARTERS_MAX_CONNS_PER_IP: open connections per client address; 0 disables the cap
	DBMaxConns       int           // QUARTERS_DB_MAX_CONNS: PostgreSQL pool size; 0: the URL's pool_max_conns, else db.DefaultMaxConns
	DBTxPooler       bool          // QUARTERS_DB_POOLER=transaction: DATABASE_URL is PgBouncer in transaction mode
	ShutdownTimeout  time.Duration // QUARTERS_SHUTDOWN_TIMEOUT
	LogLevel         slog.Level    // QUARTERS_LOG_LEVEL: debug, info, warn, error
	RedisURL         string        // REDIS_URL: shared rate limits, tenant cache; empty: in process
	UpgradeURL       string        // QUARTERS_UPGRADE_URL: named in plan-limit errors
	CORSOrigins      []string      // QUARTERS_CORS_ORIGINS: comma-separated; empty allows any
	PlatformKey      string        // QUARTERS_PLATFORM_KEY: the operator's credential; empty disables PlatformService
	RateLimitOff     bool          // QUARTERS_RATE_LIMIT=off: benchmarking only
	WebhookLoopback  bool          // QUARTERS_WEBHOOK_LOOPBACK=on: webhook endpoints on this machine, development only
	RateLimitTimeout time.Duration // QUARTERS_RATE_LIMIT_TIMEOUT: how long one decision waits for Redis
	SignupRate       int           // QUARTERS_SIGNUP_RATE: public calls per minute per client address and procedure
	AccountRate      int           // QUARTERS_SIGNIN_ACCOUNT_RATE: sign-in attempts per hour per account from unfamiliar addresses
	TopTenants       int           // QUARTERS_METRICS_TOP_TENANTS: tenants with /metrics series of their own
	DeletionGrace    time.Duration // QUARTERS_TENANT_DELETION_GRACE: how long a deleted tenant waits for its purge
	OTLPEndpoint     string        // OTEL_EXPORTER_OTLP_ENDPOINT: where traces go; empty: not traced
	// TrustedProxies: QUARTERS_TRUSTED_PROXIES, comma-separated IPs and
	// CIDRs whose X-Forwarded-For names the client.
	TrustedProxies observe.TrustedProxies
	TokenRotation  time.Duration // QUARTERS_TOKEN_ROTATION: how long an access-token signing key signs
	SMTPURL        string        // QUARTERS_SMTP_URL: smtp(s)://user:pass@host:port; empty: the development mailbox
	MailFrom       string        // QUARTERS_MAIL_FROM: the sender address, with QUARTERS_SMTP_URL
	MailboxDir     string        // QUARTERS_MAILBOX_DIR: where the development mailbox writes mails
	AppURL         string        // QUARTERS_APP_URL: the base of the links in mails; empty: this server's address
	// IDP accepts an external identity provider's tokens when its Issuer
	// is set: QUARTERS_IDP_ISSUER, _AUDIENCE, _JWKS_URL (all or none),
	// _TENANT_CLAIM, _EMAIL_CLAIM.
	IDP idp.Params
}

// setting is one environment variable the server reads: its default as
// help shows it, what it means, and how its value (or the default, when
// unset) goes into the config. The settings table is the only place
// variables are read, so help lists exactly what is read.
type setting struct {
	env  string
	def  string // applied when the variable is unset or empty; "" for none
	help string
	set  func(c *config, v string) error // v is never empty
}

// settings is every variable loadConfig reads, in the order help lists
// them.
var settings = []setting{
	{"QUARTERS_ADDR", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks one)",
		func(c *config, v string) error { c.Addr = v; return nil }},
	{"DATABASE_URL", "", "PostgreSQL URL of the app role; unset starts an embedded PostgreSQL in QUARTERS_DATA_DIR",
		func(c *config, v string) error { c.DatabaseURL = v; return nil }},
	{"QUARTERS_OWNER_DATABASE_URL", "", "PostgreSQL URL of the schema owner, for `quarters migrate`",
		func(c *config, v string) error { c.OwnerDatabaseURL = v; return nil }},
	{"QUARTERS_DATA_DIR", ".quarters", "the embedded PostgreSQL's data directory (without DATABASE_URL)",
		func(c *config, v string) error { c.DataDir = v; return nil }},
	{"REDIS_URL", "", "Redis URL: rate limits, tenant cache and revocations shared by replicas; unset: per process",
		func(c *config, v string) error { c.RedisURL = v; return nil }},
	{"QUARTERS_BASE_DOMAIN", "localhost", "<slug>.<domain> in the Host header selects a tenant",
		func(c *config, v string) error { c.BaseDomain = v; return nil }},
	{"QUARTERS_PLATFORM_KEY", "", fmt.Sprintf("the operator's credential (at least %d characters); unset disables PlatformService", minPlatformKeyLen),
		func(c *config, v string) error {
			// The key is a bearer secret with no lookup behind it, so it
			// must be long enough not to be guessed; it is never echoed.
			if n := len(v); n < minPlatformKeyLen {
				return fmt.Errorf("QUARTERS_PLATFORM_KEY is %d characters: want at least %d (e.g. openssl rand -hex 32), or unset it to disable the platform RPCs", n, minPlatformKeyLen)
			}
			c.PlatformKey = v
			return nil
		}},
	{"QUARTERS_LOG_LEVEL", "info", "debug, info, warn or error",
		func(c *config, v string) error {
			if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
				return fmt.Errorf("QUARTERS_LOG_LEVEL=%q: want debug, info, warn or error", v)
			}
			return nil
		}},
	{"QUARTERS_MAX_BODY_BYTES", strconv.FormatInt(router.DefaultMaxBodyBytes, 10), "largest request body, in bytes (at least 1024)",
		func(c *config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1024 {
				return fmt.Errorf("QUARTERS_MAX_BODY_BYTES=%q: want a byte count of at least 1024", v)
			}
			c.MaxBodyBytes = n
			return nil
		}},
	{"QUARTERS_BODY_TIMEOUT", guard.DefaultBodyTimeout.String(), "how long an RPC's body may take to arrive, plus its size allowance",
		duration(func(c *config) *time.Duration { return &c.BodyTimeout }, 100*time.Millisecond, 0, want("a duration of at least 100ms, such as 10s"))},
	{"QUARTERS_MAX_CONNS_PER_IP", strconv.Itoa(guard.DefaultMaxConnsPerIP), "open connections per client address; 0: no cap",
		func(c *config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("QUARTERS_MAX_CONNS_PER_IP=%q: want a number of connections, or 0 for no cap", v)
			}
			c.MaxConnsPerIP = n
			return nil
		}},
	{"QUARTERS_DB_MAX_CONNS", "", "PostgreSQL pool size; empty: the URL's pool_max_conns, else 8 per core (db.DefaultMaxConns)",
		func(c *config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 10000 {
				return fmt.Errorf("QUARTERS_DB_MAX_CONNS=%q: want a number of database connections (1-10000)", v)
			}
			c.DBMaxConns = n
			return nil
		}},
	{"QUARTERS_DB_POOLER", "none", "transaction: DATABASE_URL goes through PgBouncer (pool_mode=transaction) or another transaction pooler; none: straight to PostgreSQL",
		func(c *config, v string) error {
			switch v {
			case "none":
			case "transaction":
				c.DBTxPooler = true
			default:
				return fmt.Errorf("QUARTERS_DB_POOLER=%q: want none, or transaction behind PgBouncer in pool_mode=transaction", v)
			}
			return nil
		}},
	{"QUARTERS_METRICS_TOP_TENANTS", strconv.Itoa(metrics.DefaultTopTenants), "tenants with /metrics series of their own (the busiest); the rest share one \"other\" series",
		func(c *config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				return fmt.Errorf("QUARTERS_METRICS_TOP_TENANTS=%q: want a number of tenants (1-1000)", v)
			}
			c.TopTenants = n
			return nil
		}},
	{"QUARTERS_TRUSTED_PROXIES", "", "comma-separated IPs and CIDRs whose X-Forwarded-For names the client",
		func(c *config, v string) error {
			p, err := observe.ParseTrustedProxies(v)
			if err != nil {
				return fmt.Errorf("QUARTERS_TRUSTED_PROXIES: %w", err)
			}
			c.TrustedProxies = p
			return nil
		}},
	{"QUARTERS_CORS_ORIGINS", "", "comma-separated origins browsers may call from; unset allows any",
		func(c *config, v string) error {
			for _, o := range strings.Split(v, ",") {
				if o = strings.TrimSpace(o); o != "" {
					c.CORSOrigins = append(c.CORSOrigins, o)
				}
			}
			return nil
		}},
	{"QUARTERS_UPGRADE_URL", router.DefaultUpgradeURL, "the upgrade page named in plan-limit errors",
		func(c *config, v string) error { c.UpgradeURL = v; return nil }},
	{"QUARTERS_RATE_LIMIT", "on", "off disables rate limiting (benchmarks only)",
		func(c *config, v string) error {
			switch v {
			case "on":
			case "off":
				c.RateLimitOff = true
			default:
				return fmt.Errorf("QUARTERS_RATE_LIMIT=%q: want on or off", v)
			}
			return nil
		}},
	{"QUARTERS_WEBHOOK_LOOPBACK", "off", "on lets webhook endpoints be on loopback, over plain http too (development only)",
		func(c *config, v string) error {
			switch v {
			case "off":
			case "on":
				c.WebhookLoopback = true
			default:
				return fmt.Errorf("QUARTERS_WEBHOOK_LOOPBACK=%q: want on or off", v)
			}
			return nil
		}},
	{"QUARTERS_RATE_LIMIT_TIMEOUT", ratelimit.DefaultFailoverTimeout.String(), "how long one rate-limit decision waits for Redis before deciding in process",
		duration(func(c *config) *time.Duration { return &c.RateLimitTimeout }, time.Millisecond, 10*time.Second, want("a duration between 1ms and 10s, such as 150ms"))},
	{"QUARTERS_SIGNUP_RATE", fmt.Sprintf("%d", router.DefaultAnonymousLimit.Rate), "public calls (sign-up, sign-in) per minute per client address and procedure",
		count(func(c *config) *int { return &c.SignupRate }, want("a number of requests per minute, at least 1"))},
	{"QUARTERS_SIGNIN_ACCOUNT_RATE", fmt.Sprintf("%d", router.DefaultAccountLimit.Rate), "sign-in attempts per hour per account from unfamiliar addresses",
		count(func(c *config) *int { return &c.AccountRate }, want("a number of sign-in attempts per hour, at least 1"))},
	{"QUARTERS_TOKEN_ROTATION", shortDuration(session.DefaultRotateEvery), "how long an access-token signing key signs before the next takes over",
		duration(func(c *config) *time.Duration { return &c.TokenRotation }, time.Minute, 0, want("a duration of at least 1m, such as 24h"))},
	{"QUARTERS_SHUTDOWN_TIMEOUT", "30s", "how long in-flight calls may finish after SIGTERM",
		duration(func(c *config) *time.Duration { return &c.ShutdownTimeout }, time.Nanosecond, 0, want("a positive duration such as 30s"))},
	{"QUARTERS_TENANT_DELETION_GRACE", shortDuration(deletion.DefaultGrace), "how long a deleted tenant waits for its purge (its owner may export or cancel meanwhile)",
		duration(func(c *config) *time.Duration { return &c.DeletionGrace }, time.Second, 0, want("a duration of at least 1s, such as 168h"))},
	{"QUARTERS_SMTP_URL", "", "smtp(s)://user:pass@host:port to send mail; unset: the development mailbox",
		func(c *config, v string) error { c.SMTPURL = v; return nil }},
	{"QUARTERS_MAIL_FROM", "", "the sender address of mails (with QUARTERS_SMTP_URL)",
		func(c *config, v string) error { c.MailFrom = v; return nil }},
	{"QUARTERS_MAILBOX_DIR", ".quarters-mailbox", "where the development mailbox writes mails (without QUARTERS_SMTP_URL)",
		func(c *config, v string) error { c.MailboxDir = v; return nil }},
	{"QUARTERS_APP_URL", "", "base of the links in mails (http(s)://…); unset: this server's address",
		func(c *config, v string) error {
			if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return fmt.Errorf("QUARTERS_APP_URL=%q: want an http(s) URL such as https://app.example.com", v)
			}
			c.AppURL = v
			return nil
		}},
	{"QUARTERS_IDP_ISSUER", "", "an identity provider's issuer whose tokens are accepted (with _AUDIENCE and _JWKS_URL)",
		func(c *config, v string) error { c.IDP.Issuer = v; return nil }},
	{"QUARTERS_IDP_AUDIENCE", "", "the audience the identity provider's tokens must name",
		func(c *config, v string) error { c.IDP.Audience = v; return nil }},
	{"QUARTERS_IDP_JWKS_URL", "", "https URL of the identity provider's signing keys (JWKS)",
		func(c *config, v string) error { c.IDP.JWKSURL = v; return nil }},
	{"QUARTERS_IDP_TENANT_CLAIM", idp.DefaultTenantClaim, "the token claim that names the tenant (id or slug)",
		func(c *config, v string) error { c.IDP.TenantClaim = v; return nil }},
	{"QUARTERS_IDP_EMAIL_CLAIM", idp.DefaultEmailClaim, "the token claim that holds the user's email",
		func(c *config, v string) error { c.IDP.EmailClaim = v; return nil }},
	{tracing.EndpointEnv, "", "OTLP/HTTP collector URL (http://host:4318): traces every RPC and statement; unset: no tracing",
		func(c *config, v string) error {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("%s=%q: want the collector's http(s) URL, such as http://localhost:4318", tracing.EndpointEnv, v)
			}
			c.OTLPEndpoint = v
			return nil
		}},
}

// want is a setter's complaint about a value: loadConfig makes it
// "NAME=value: want <want>".
type want string

func (w want) Error() string { return "want " + string(w) }

// duration sets a duration field, checked against lo and (unless 0) hi.
func duration(field func(*config) *time.Duration, lo, hi time.Duration, w want) func(*config, string) error {
	return func(c *config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < lo || (hi > 0 && d > hi) {
			return w
		}
		*field(c) = d
		return nil
	}
}

// count sets a positive int field.
func count(field func(*config) *int, w want) func(*config, string) error {
	return func(c *config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return w
		}
		*field(c) = n
		return nil
	}
}

// shortDuration prints d as help shows defaults: 24h, not 24h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// loadConfig reads every setting from getenv (unset or empty: the
// default), then checks the ones that only make sense together.
func loadConfig(getenv func(string) string) (config, error) {
	var c config
	for _, s := range settings {
		v := or(getenv(s.env), s.def)
		if v == "" {
			continue
		}
		if err := s.set(&c, v); err != nil {
			if w, ok := err.(want); ok {
				return c, fmt.Errorf("%s=%q: %s", s.env, v, w)
			}
			return c, err
		}
	}
	if c.SMTPURL != "" {
		// Checked here, so a bad URL stops the server at start.
		if _, err := mail.NewSMTP(mail.SMTPParams{URL: c.SMTPURL, From: c.MailFrom}); err != nil {
			return c, err
		}
	}
	if err := checkIDP(c.IDP); err != nil {
		return c, err
	}
	return c, nil
}

// checkIDP checks the identity provider's settings: issuer, audience and
// JWKS URL together or not at all.
func checkIDP(p idp.Params) error {
	set := 0
	for _, v := range []string{p.Issuer, p.Audience, p.JWKSURL} {
		if v != "" {
			set++
		}
	}
	switch {
	case set == 0:
		return nil
	case set < 3:
		return errors.New("QUARTERS_IDP_ISSUER, QUARTERS_IDP_AUDIENCE and QUARTERS_IDP_JWKS_URL: set all three to accept an identity provider's tokens, or none")
	case p.Issuer == session.DefaultIssuer:
		// Tokens are routed by iss: the provider's cannot share ours.
		return fmt.Errorf("QUARTERS_IDP_ISSUER=%q: that is Quarters' own issuer", p.Issuer)
	}
	if err := idp.CheckJWKSURL(p.JWKSURL); err != nil {
		return fmt.Errorf("QUARTERS_IDP_JWKS_URL: %w", err)
	}
	return nil
}

// minPlatformKeyLen is the shortest QUARTERS_PLATFORM_KEY accepted.
const minPlatformKeyLen = 32

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// newLogger logs JSON unless w is a terminal, where text reads better.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return slog.New(slog.NewTextHandler(w, opts))
		}
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
