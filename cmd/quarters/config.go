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

	"github.com/quarters-dev/quarters/internal/guard"
	"github.com/quarters-dev/quarters/internal/idp"
	"github.com/quarters-dev/quarters/internal/mail"
	"github.com/quarters-dev/quarters/internal/observe"
	"github.com/quarters-dev/quarters/internal/ratelimit"
	"github.com/quarters-dev/quarters/internal/router"
	"github.com/quarters-dev/quarters/internal/session"
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
	ShutdownTimeout  time.Duration // QUARTERS_SHUTDOWN_TIMEOUT
	LogLevel         slog.Level    // QUARTERS_LOG_LEVEL: debug, info, warn, error
	RedisURL         string        // REDIS_URL: shared rate limits, tenant cache; empty: in process
	UpgradeURL       string        // QUARTERS_UPGRADE_URL: named in plan-limit errors
	CORSOrigins      []string      // QUARTERS_CORS_ORIGINS: comma-separated; empty allows any
	PlatformKey      string        // QUARTERS_PLATFORM_KEY: the operator's credential; empty disables PlatformService
	RateLimitOff     bool          // QUARTERS_RATE_LIMIT=off: benchmarking only
	RateLimitTimeout time.Duration // QUARTERS_RATE_LIMIT_TIMEOUT: how long one decision waits for Redis
	SignupRate       int           // QUARTERS_SIGNUP_RATE: public calls per minute per client address and procedure
	AccountRate      int           // QUARTERS_SIGNIN_ACCOUNT_RATE: sign-in attempts per hour per account from unfamiliar addresses
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

func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		Addr:             or(getenv("QUARTERS_ADDR"), "127.0.0.1:8080"),
		DatabaseURL:      getenv("DATABASE_URL"),
		OwnerDatabaseURL: getenv("QUARTERS_OWNER_DATABASE_URL"),
		DataDir:          or(getenv("QUARTERS_DATA_DIR"), ".quarters"),
		BaseDomain:       or(getenv("QUARTERS_BASE_DOMAIN"), "localhost"),
		MaxBodyBytes:     router.DefaultMaxBodyBytes,
		BodyTimeout:      guard.DefaultBodyTimeout,
		RateLimitTimeout: ratelimit.DefaultFailoverTimeout,
		MaxConnsPerIP:    guard.DefaultMaxConnsPerIP,
		ShutdownTimeout:  30 * time.Second,
		RedisURL:         getenv("REDIS_URL"),
		UpgradeURL:       or(getenv("QUARTERS_UPGRADE_URL"), router.DefaultUpgradeURL),
		PlatformKey:      getenv("QUARTERS_PLATFORM_KEY"),
		TokenRotation:    session.DefaultRotateEvery,
		SMTPURL:          getenv("QUARTERS_SMTP_URL"),
		MailFrom:         getenv("QUARTERS_MAIL_FROM"),
		MailboxDir:       or(getenv("QUARTERS_MAILBOX_DIR"), ".quarters-mailbox"),
		AppURL:           getenv("QUARTERS_APP_URL"),
	}
	if c.SMTPURL != "" {
		// Checked here, so a bad URL stops the server at start.
		if _, err := mail.NewSMTP(mail.SMTPParams{URL: c.SMTPURL, From: c.MailFrom}); err != nil {
			return c, err
		}
	}
	if c.AppURL != "" {
		if u, err := url.Parse(c.AppURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return c, fmt.Errorf("QUARTERS_APP_URL=%q: want an http(s) URL such as https://app.example.com", c.AppURL)
		}
	}
	if v := getenv("QUARTERS_SIGNUP_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return c, fmt.Errorf("QUARTERS_SIGNUP_RATE=%q: want a number of requests per minute, at least 1", v)
		}
		c.SignupRate = n
	}
	if v := getenv("QUARTERS_SIGNIN_ACCOUNT_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return c, fmt.Errorf("QUARTERS_SIGNIN_ACCOUNT_RATE=%q: want a number of sign-in attempts per hour, at least 1", v)
		}
		c.AccountRate = n
	}
	if v := getenv("QUARTERS_TRUSTED_PROXIES"); v != "" {
		p, err := observe.ParseTrustedProxies(v)
		if err != nil {
			return c, fmt.Errorf("QUARTERS_TRUSTED_PROXIES: %w", err)
		}
		c.TrustedProxies = p
	}
	switch v := getenv("QUARTERS_RATE_LIMIT"); v {
	case "", "on":
	case "off":
		c.RateLimitOff = true
	default:
		return c, fmt.Errorf("QUARTERS_RATE_LIMIT=%q: want on or off", v)
	}
	for _, o := range strings.Split(getenv("QUARTERS_CORS_ORIGINS"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.CORSOrigins = append(c.CORSOrigins, o)
		}
	}
	if v := getenv("QUARTERS_MAX_BODY_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1024 {
			return c, fmt.Errorf("QUARTERS_MAX_BODY_BYTES=%q: want a byte count of at least 1024", v)
		}
		c.MaxBodyBytes = n
	}
	if v := getenv("QUARTERS_RATE_LIMIT_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Millisecond || d > 10*time.Second {
			return c, fmt.Errorf("QUARTERS_RATE_LIMIT_TIMEOUT=%q: want a duration between 1ms and 10s, such as 150ms", v)
		}
		c.RateLimitTimeout = d
	}
	if v := getenv("QUARTERS_BODY_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 100*time.Millisecond {
			return c, fmt.Errorf("QUARTERS_BODY_TIMEOUT=%q: want a duration of at least 100ms, such as 10s", v)
		}
		c.BodyTimeout = d
	}
	if v := getenv("QUARTERS_MAX_CONNS_PER_IP"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return c, fmt.Errorf("QUARTERS_MAX_CONNS_PER_IP=%q: want a number of connections, or 0 for no cap", v)
		}
		c.MaxConnsPerIP = n
	}
	if v := getenv("QUARTERS_DB_MAX_CONNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return c, fmt.Errorf("QUARTERS_DB_MAX_CONNS=%q: want a number of database connections (1-10000)", v)
		}
		c.DBMaxConns = n
	}
	if v := getenv("QUARTERS_SHUTDOWN_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("QUARTERS_SHUTDOWN_TIMEOUT=%q: want a positive duration such as 30s", v)
		}
		c.ShutdownTimeout = d
	}
	if v := getenv("QUARTERS_TOKEN_ROTATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute {
			return c, fmt.Errorf("QUARTERS_TOKEN_ROTATION=%q: want a duration of at least 1m, such as 24h", v)
		}
		c.TokenRotation = d
	}
	// The key is a bearer secret with no lookup behind it, so it must be
	// long enough not to be guessed; it is never echoed in the error.
	if n := len(c.PlatformKey); n > 0 && n < minPlatformKeyLen {
		return c, fmt.Errorf("QUARTERS_PLATFORM_KEY is %d characters: want at least %d (e.g. openssl rand -hex 32), or unset it to disable the platform RPCs", n, minPlatformKeyLen)
	}
	if err := loadIDP(getenv, &c.IDP); err != nil {
		return c, err
	}
	if v := getenv("QUARTERS_LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return c, fmt.Errorf("QUARTERS_LOG_LEVEL=%q: want debug, info, warn or error", v)
		}
	}
	return c, nil
}

// loadIDP reads the identity provider's settings: issuer, audience and
// JWKS URL together or not at all.
func loadIDP(getenv func(string) string, p *idp.Params) error {
	p.Issuer = getenv("QUARTERS_IDP_ISSUER")
	p.Audience = getenv("QUARTERS_IDP_AUDIENCE")
	p.JWKSURL = getenv("QUARTERS_IDP_JWKS_URL")
	p.TenantClaim = or(getenv("QUARTERS_IDP_TENANT_CLAIM"), idp.DefaultTenantClaim)
	p.EmailClaim = or(getenv("QUARTERS_IDP_EMAIL_CLAIM"), idp.DefaultEmailClaim)
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
