package main

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadConfig(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

	c, err := loadConfig(env(nil))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", c.Addr)
	require.Equal(t, ".quarters", c.DataDir)
	require.Equal(t, 30*time.Second, c.ShutdownTimeout)
	require.Equal(t, slog.LevelInfo, c.LogLevel)
	require.Equal(t, 24*time.Hour, c.TokenRotation)
	require.Equal(t, 10*time.Second, c.BodyTimeout)
	require.Equal(t, 150*time.Millisecond, c.RateLimitTimeout)
	require.Equal(t, 256, c.MaxConnsPerIP)
	require.Zero(t, c.DBMaxConns, "db.DefaultMaxConns decides")
	require.False(t, c.DBTxPooler, "straight to PostgreSQL by default")
	require.Empty(t, c.TrustedProxies)

	c, err = loadConfig(env(map[string]string{"QUARTERS_LOG_LEVEL": "debug", "QUARTERS_SHUTDOWN_TIMEOUT": "5s", "QUARTERS_MAX_BODY_BYTES": "2048",
		"QUARTERS_BODY_TIMEOUT": "3s", "QUARTERS_MAX_CONNS_PER_IP": "0", "QUARTERS_RATE_LIMIT_TIMEOUT": "400ms", "QUARTERS_DB_MAX_CONNS": "6",
		"QUARTERS_DB_POOLER": "transaction"}))
	require.NoError(t, err)
	require.True(t, c.DBTxPooler)
	require.Equal(t, 6, c.DBMaxConns)
	require.Equal(t, 400*time.Millisecond, c.RateLimitTimeout)
	require.Equal(t, 3*time.Second, c.BodyTimeout)
	require.Equal(t, 0, c.MaxConnsPerIP)
	require.Equal(t, slog.LevelDebug, c.LogLevel)
	require.Equal(t, 5*time.Second, c.ShutdownTimeout)
	require.Equal(t, int64(2048), c.MaxBodyBytes)

	c, err = loadConfig(env(map[string]string{
		"QUARTERS_PLATFORM_KEY": "0123456789abcdef0123456789abcdef", "QUARTERS_RATE_LIMIT": "off",
		"QUARTERS_CORS_ORIGINS": "https://a.example, https://b.example", "REDIS_URL": "redis://127.0.0.1:6379/0",
		"QUARTERS_SIGNUP_RATE": "30", "QUARTERS_TOKEN_ROTATION": "168h",
		"QUARTERS_SIGNIN_ACCOUNT_RATE": "60", "QUARTERS_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7",
	}))
	require.NoError(t, err)
	require.Equal(t, "0123456789abcdef0123456789abcdef", c.PlatformKey)
	require.True(t, c.RateLimitOff)
	require.Equal(t, []string{"https://a.example", "https://b.example"}, c.CORSOrigins)
	require.Equal(t, "redis://127.0.0.1:6379/0", c.RedisURL)
	require.Equal(t, 30, c.SignupRate)
	require.Equal(t, 168*time.Hour, c.TokenRotation)
	require.Equal(t, 60, c.AccountRate)
	require.Len(t, c.TrustedProxies, 2)
	require.True(t, c.TrustedProxies.Contains(netip.MustParseAddr("10.1.2.3")))
	require.False(t, c.TrustedProxies.Contains(netip.MustParseAddr("192.0.2.8")))

	// Mail: the development mailbox by default; SMTP checked at start.
	c, err = loadConfig(env(nil))
	require.NoError(t, err)
	require.Empty(t, c.SMTPURL)
	require.Equal(t, ".quarters-mailbox", c.MailboxDir)
	c, err = loadConfig(env(map[string]string{
		"QUARTERS_SMTP_URL": "smtps://u:p@mail.example:465", "QUARTERS_MAIL_FROM": "noreply@example.com",
		"QUARTERS_APP_URL": "https://app.example.com", "QUARTERS_MAILBOX_DIR": "/tmp/box",
	}))
	require.NoError(t, err)
	require.Equal(t, "smtps://u:p@mail.example:465", c.SMTPURL)
	require.Equal(t, "https://app.example.com", c.AppURL)
	require.Equal(t, "/tmp/box", c.MailboxDir)
	_, err = loadConfig(env(map[string]string{"QUARTERS_SMTP_URL": "smtps://mail.example"}))
	require.ErrorContains(t, err, "QUARTERS_MAIL_FROM")
	_, err = loadConfig(env(map[string]string{"QUARTERS_SMTP_URL": "ftp://u:hunter22@mail.example", "QUARTERS_MAIL_FROM": "a@b.example"}))
	require.ErrorContains(t, err, "QUARTERS_SMTP_URL")
	require.NotContains(t, err.Error(), "hunter22")

	for k, v := range map[string]string{
		"QUARTERS_APP_URL":   "app.example.com",
		"QUARTERS_LOG_LEVEL": "loud", "QUARTERS_SHUTDOWN_TIMEOUT": "soon", "QUARTERS_MAX_BODY_BYTES": "12",
		"QUARTERS_PLATFORM_KEY": "short", "QUARTERS_RATE_LIMIT": "maybe", "QUARTERS_SIGNUP_RATE": "-1",
		"QUARTERS_SIGNIN_ACCOUNT_RATE": "0", "QUARTERS_TRUSTED_PROXIES": "10.0.0.0/8, lb.internal",
		"QUARTERS_BODY_TIMEOUT": "1ms", "QUARTERS_MAX_CONNS_PER_IP": "many", "QUARTERS_RATE_LIMIT_TIMEOUT": "1h",
		"QUARTERS_DB_MAX_CONNS": "0", "QUARTERS_DB_POOLER": "pgbouncer",
	} {
		_, err := loadConfig(env(map[string]string{k: v}))
		require.ErrorContains(t, err, k)
	}

	c, err = loadConfig(env(nil))
	require.NoError(t, err)
	require.Empty(t, c.IDP.Issuer, "no identity provider by default")
	c, err = loadConfig(env(map[string]string{
		"QUARTERS_IDP_ISSUER": "https://idp.example", "QUARTERS_IDP_AUDIENCE": "quarters",
		"QUARTERS_IDP_JWKS_URL": "https://idp.example/.well-known/jwks.json",
	}))
	require.NoError(t, err)
	require.Equal(t, "https://idp.example", c.IDP.Issuer)
	require.Equal(t, "quarters", c.IDP.Audience)
	require.Equal(t, "https://idp.example/.well-known/jwks.json", c.IDP.JWKSURL)
	require.Equal(t, "tenant", c.IDP.TenantClaim)
	require.Equal(t, "email", c.IDP.EmailClaim)
	c, err = loadConfig(env(map[string]string{
		"QUARTERS_IDP_ISSUER": "https://idp.example", "QUARTERS_IDP_AUDIENCE": "quarters",
		"QUARTERS_IDP_JWKS_URL": "http://127.0.0.1:8081/jwks", "QUARTERS_IDP_TENANT_CLAIM": "org",
		"QUARTERS_IDP_EMAIL_CLAIM": "upn",
	}))
	require.NoError(t, err)
	require.Equal(t, "org", c.IDP.TenantClaim)
	require.Equal(t, "upn", c.IDP.EmailClaim)
	for name, kv := range map[string]map[string]string{
		"issuer only":   {"QUARTERS_IDP_ISSUER": "https://idp.example"},
		"no jwks url":   {"QUARTERS_IDP_ISSUER": "https://idp.example", "QUARTERS_IDP_AUDIENCE": "quarters"},
		"audience only": {"QUARTERS_IDP_AUDIENCE": "quarters"},
		"http jwks": {"QUARTERS_IDP_ISSUER": "https://idp.example", "QUARTERS_IDP_AUDIENCE": "quarters",
			"QUARTERS_IDP_JWKS_URL": "http://idp.example/jwks"},
		"relative jwks": {"QUARTERS_IDP_ISSUER": "https://idp.example", "QUARTERS_IDP_AUDIENCE": "quarters",
			"QUARTERS_IDP_JWKS_URL": "/jwks"},
		"our issuer": {"QUARTERS_IDP_ISSUER": "quarters", "QUARTERS_IDP_AUDIENCE": "quarters",
			"QUARTERS_IDP_JWKS_URL": "https://idp.example/jwks"},
	} {
		_, err := loadConfig(env(kv))
		require.ErrorContains(t, err, "QUARTERS_IDP_", name)
	}
	for _, v := range []string{"soon", "30s"} {
		k := "QUARTERS_TOKEN_ROTATION"
		_, err := loadConfig(env(map[string]string{k: v}))
		require.ErrorContains(t, err, k)
	}
}

func TestDeletionGraceSetting(t *testing.T) {
	t.Parallel()
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	c, err := loadConfig(env(nil))
	require.NoError(t, err)
	require.Equal(t, 7*24*time.Hour, c.DeletionGrace)
	c, err = loadConfig(env(map[string]string{"QUARTERS_TENANT_DELETION_GRACE": "30m"}))
	require.NoError(t, err)
	require.Equal(t, 30*time.Minute, c.DeletionGrace)
	for _, bad := range []string{"0s", "-1h", "soon"} {
		_, err = loadConfig(env(map[string]string{"QUARTERS_TENANT_DELETION_GRACE": bad}))
		require.ErrorContains(t, err, "QUARTERS_TENANT_DELETION_GRACE", bad)
	}
}

func TestWebhookLoopbackSetting(t *testing.T) {
	t.Parallel()
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	c, err := loadConfig(env(nil))
	require.NoError(t, err)
	require.False(t, c.WebhookLoopback, "production default: public https endpoints only")
	c, err = loadConfig(env(map[string]string{"QUARTERS_WEBHOOK_LOOPBACK": "on"}))
	require.NoError(t, err)
	require.True(t, c.WebhookLoopback)
	_, err = loadConfig(env(map[string]string{"QUARTERS_WEBHOOK_LOOPBACK": "yes"}))
	require.ErrorContains(t, err, "QUARTERS_WEBHOOK_LOOPBACK")
}
