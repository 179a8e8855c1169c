package idp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/idp"
	"github.com/quarters-dev/quarters/internal/idp/idptest"
)

const (
	issuer   = "https://idp.example"
	audience = "quarters-test"
)

var ctx = context.Background()

type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func jsonOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func rsaJWK(t *testing.T, bits int) map[string]any {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	require.NoError(t, err)
	return map[string]any{"kty": "RSA", "kid": "r", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	rsa2048 := rsaJWK(t, 2048)
	k, err := idp.ParseKey(jsonOf(t, rsa2048))
	require.NoError(t, err)
	require.Equal(t, "r", k.ID)
	require.Equal(t, []string{"RS256", "RS384", "RS512", "PS256"}, k.Algs)
	require.IsType(t, &rsa.PublicKey{}, k.Public)

	pinned := map[string]any{"alg": "PS256"}
	for f, v := range rsa2048 {
		pinned[f] = v
	}
	k, err = idp.ParseKey(jsonOf(t, pinned))
	require.NoError(t, err)
	require.Equal(t, []string{"PS256"}, k.Algs, "the JWK's alg pins the algorithm")

	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	pt, err := ec.PublicKey.Bytes()
	require.NoError(t, err)
	ecJWK := map[string]any{"kty": "EC", "kid": "e", "crv": "P-256", "x": b64(pt[1:33]), "y": b64(pt[33:])}
	k, err = idp.ParseKey(jsonOf(t, ecJWK))
	require.NoError(t, err)
	require.Equal(t, []string{"ES256"}, k.Algs)

	with := func(base map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for f, v := range base {
			out[f] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	offCurve := append([]byte(nil), pt[33:]...)
	offCurve[31] ^= 1
	for name, c := range map[string]struct {
		jwk  any
		want string
	}{
		"rsa 1024":          {rsaJWK(t, 1024), "at least 2048"},
		"oct":               {map[string]any{"kty": "oct", "kid": "h", "k": b64([]byte("secret"))}, "unsupported kty"},
		"unknown kty":       {map[string]any{"kty": "XYZ", "kid": "x"}, "unsupported kty"},
		"no kid":            {with(rsa2048, "kid", ""), "no kid"},
		"enc key":           {with(rsa2048, "use", "enc"), "not sig"},
		"private":           {with(rsa2048, "d", "AQAB"), "private"},
		"alg mismatch":      {with(rsa2048, "alg", "ES256"), "does not fit"},
		"hmac alg":          {with(rsa2048, "alg", "HS256"), "does not fit"},
		"none alg":          {with(ecJWK, "alg", "none"), "does not fit"},
		"even exponent":     {with(rsa2048, "e", b64([]byte{4})), "bad e"},
		"ec off curve":      {with(ecJWK, "y", b64(offCurve)), "bad EC point"},
		"ec short":          {with(ecJWK, "x", b64(pt[1:20])), "bad EC point"},
		"ec p-521":          {with(ecJWK, "crv", "P-521"), "unsupported curve"},
		"okp x25519":        {map[string]any{"kty": "OKP", "kid": "o", "crv": "X25519", "x": b64(make([]byte, 32))}, "unsupported curve"},
		"okp short":         {map[string]any{"kty": "OKP", "kid": "o", "crv": "Ed25519", "x": b64(make([]byte, 31))}, "bad Ed25519"},
		"padded base64":     {with(rsa2048, "e", "AQAB="), "bad e"},
		"not json":          {"nope", "jwk"},
		"ec alg for p-384?": {with(ecJWK, "alg", "ES384"), "does not fit"},
	} {
		_, err := idp.ParseKey(jsonOf(t, c.jwk))
		require.ErrorContains(t, err, c.want, name)
	}
}

func TestParseJWKS(t *testing.T) {
	t.Parallel()
	a, b := rsaJWK(t, 2048), rsaJWK(t, 2048)
	a["kid"], b["kid"] = "a", "b"
	dup := map[string]any{}
	for f, v := range b {
		dup[f] = v
	}
	oct := map[string]any{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}
	keys, skipped, err := idp.ParseJWKS(jsonOf(t, map[string]any{"keys": []any{a, b, dup, oct}}))
	require.NoError(t, err)
	require.Len(t, keys, 1, "b is ambiguous and dropped, oct is unusable")
	require.Contains(t, keys, "a")
	require.Len(t, skipped, 2)

	_, _, err = idp.ParseJWKS(jsonOf(t, map[string]any{"keys": []any{oct}}))
	require.ErrorContains(t, err, "no usable key")
	_, _, err = idp.ParseJWKS([]byte(`<html>`))
	require.Error(t, err)
}

func TestCheckJWKSURL(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"https://idp.example/jwks", "http://localhost:8080/jwks", "http://127.0.0.1/jwks", "http://[::1]:9/jwks"} {
		require.NoError(t, idp.CheckJWKSURL(ok), ok)
	}
	for _, bad := range []string{"http://idp.example/jwks", "/jwks", "file:///etc/passwd", "ftp://idp.example", "http://localhost.evil.example/"} {
		require.Error(t, idp.CheckJWKSURL(bad), bad)
	}
	_, err := idp.New(idp.Params{Issuer: issuer, Audience: audience}, nil)
	require.Error(t, err)
	_, err = idp.New(idp.Params{Issuer: issuer, Audience: audience, JWKSURL: "http://idp.example/jwks"}, nil)
	require.Error(t, err)
}

type fixture struct {
	p     *idptest.Provider
	clock *clock
	v     *idp.Verifier
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	p := idptest.New(t)
	p.AddKey(t, "rsa", idptest.RSA)
	p.AddKey(t, "ec", idptest.EC)
	p.AddKey(t, "ed", idptest.Ed25519)
	p.Publish("rsa", "ec", "ed")
	c := newClock()
	v, err := idp.New(idp.Params{Issuer: issuer, Audience: audience, JWKSURL: p.JWKSURL}, &idp.Opts{Now: c.Now})
	require.NoError(t, err)
	return &fixture{p: p, clock: c, v: v}
}

func (f *fixture) claims(kv ...any) jwt.MapClaims {
	now := f.clock.Now()
	c := jwt.MapClaims{
		"iss": issuer, "aud": []string{"other", audience}, "sub": "idp-user-1",
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
		"email": "Ann@Example.com", "tenant": "acme",
	}
	return idptest.With(c, kv...)
}

func TestVerifyAccepts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, kid := range []string{"rsa", "ec", "ed"} {
		id, err := f.v.Verify(ctx, f.p.Sign(t, kid, f.claims(), nil))
		require.NoError(t, err, kid)
		require.Equal(t, idp.Identity{Tenant: "acme", Email: "Ann@Example.com"}, id, kid)
	}
	// A single string aud, email_verified true (bool or string), an nbf
	// and an exp just inside the leeway are fine.
	for name, c := range map[string]jwt.MapClaims{
		"string aud":       f.claims("aud", audience),
		"verified":         f.claims("email_verified", true),
		"verified string":  f.claims("email_verified", "true"),
		"nbf now":          f.claims("nbf", f.clock.Now().Unix()),
		"expired in skew":  f.claims("exp", f.clock.Now().Add(-50*time.Second).Unix()),
		"nbf soon in skew": f.claims("nbf", f.clock.Now().Add(50*time.Second).Unix()),
	} {
		_, err := f.v.Verify(ctx, f.p.Sign(t, "rsa", c, nil))
		require.NoError(t, err, name)
	}
	require.Equal(t, 1, f.p.Fetches(), "the JWKS is fetched once and cached")
}

func TestVerifyRefuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.p.AddKey(t, "unpublished", idptest.RSA)
	now := f.clock.Now()
	rsaPub, err := x509.MarshalPKIXPublicKey(f.p.Public("rsa"))
	require.NoError(t, err)
	good := f.p.Sign(t, "rsa", f.claims(), nil)
	parts := strings.Split(good, ".")
	for name, tok := range map[string]string{
		"wrong iss":      f.p.Sign(t, "rsa", f.claims("iss", issuer+"/"), nil),
		"wrong aud":      f.p.Sign(t, "rsa", f.claims("aud", "someone-else"), nil),
		"no aud":         f.p.Sign(t, "rsa", f.claims("aud", nil), nil),
		"expired":        f.p.Sign(t, "rsa", f.claims("exp", now.Add(-2*time.Minute).Unix()), nil),
		"no exp":         f.p.Sign(t, "rsa", f.claims("exp", nil), nil),
		"not yet valid":  f.p.Sign(t, "rsa", f.claims("nbf", now.Add(2*time.Minute).Unix()), nil),
		"unverified":     f.p.Sign(t, "rsa", f.claims("email_verified", false), nil),
		"unverified str": f.p.Sign(t, "rsa", f.claims("email_verified", "false"), nil),
		"no email":       f.p.Sign(t, "rsa", f.claims("email", nil), nil),
		"no tenant":      f.p.Sign(t, "rsa", f.claims("tenant", nil), nil),
		"tenant number":  f.p.Sign(t, "rsa", f.claims("tenant", 7), nil),
		"unknown kid":    f.p.Sign(t, "unpublished", f.claims(), nil),
		"kid of another key": idptest.Forge(t, jwt.SigningMethodRS256, map[string]any{"alg": "RS256", "kid": "ec"},
			f.claims(), mustRSA(t)),
		"no kid": idptest.Forge(t, jwt.SigningMethodRS256, map[string]any{"alg": "RS256"}, f.claims(), mustRSA(t)),
		"alg none": idptest.Forge(t, jwt.SigningMethodNone, map[string]any{"alg": "none", "kid": "rsa"},
			f.claims(), jwt.UnsafeAllowNoneSignatureType),
		"hs256 with public key": idptest.Forge(t, jwt.SigningMethodHS256, map[string]any{"alg": "HS256", "kid": "rsa"},
			f.claims(), rsaPub),
		"es256 on rsa key": f.forgeAlg(t, "ES256", parts),
		"rs256 on ec key":  f.p.Sign(t, "rsa", f.claims(), map[string]any{"kid": "ec"}),
		"embedded jwk": f.p.Sign(t, "unpublished", f.claims(), map[string]any{
			"jwk": f.p.JWK("unpublished")}),
		"embedded jwk, known kid": f.p.Sign(t, "rsa", f.claims(), map[string]any{"jwk": f.p.JWK("rsa")}),
		"jku":                     f.p.Sign(t, "rsa", f.claims(), map[string]any{"jku": "https://evil.example/jwks"}),
		"crit":                    f.p.Sign(t, "rsa", f.claims(), map[string]any{"crit": []string{"exp"}}),
		"tampered payload":        parts[0] + "." + b64(jsonOf(t, f.claims("email", "boss@example.com"))) + "." + parts[2],
		"too long":                f.p.Sign(t, "rsa", f.claims("pad", strings.Repeat("x", idp.MaxTokenSize)), nil),
		"garbage":                 "not.a.jwt",
	} {
		_, err := f.v.Verify(ctx, tok)
		require.ErrorIs(t, err, auth.ErrInvalidToken, name)
	}
}

// forgeAlg re-labels a good token's header with alg, keeping its kid and
// signature: an algorithm the key does not fit.
func (f *fixture) forgeAlg(t *testing.T, alg string, parts []string) string {
	t.Helper()
	return b64(jsonOf(t, map[string]any{"alg": alg, "kid": "rsa", "typ": "JWT"})) + "." + parts[1] + "." + parts[2]
}

func mustRSA(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return k
}

// TestVerifyRefetch: an unknown kid fetches the JWKS again, at most once
// per RefetchAfter; the set is refreshed after RefreshEvery; a failed fetch
// keeps the cached keys, and with none cached is a failure to decide, not a
// refusal.
func TestVerifyRefetch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, err := f.v.Verify(ctx, f.p.Sign(t, "rsa", f.claims(), nil))
	require.NoError(t, err)
	require.Equal(t, 1, f.p.Fetches())

	// The provider rotates in a new key: a token under it is refused until
	// RefetchAfter has passed since the last fetch, and no forged kid makes
	// us fetch sooner.
	f.p.AddKey(t, "next", idptest.EC)
	f.p.Publish("rsa", "next")
	for range 5 {
		_, err = f.v.Verify(ctx, f.p.Sign(t, "next", f.claims(), nil))
		require.ErrorIs(t, err, auth.ErrInvalidToken)
	}
	require.Equal(t, 1, f.p.Fetches(), "refetches are rate-limited")
	f.clock.Add(idp.RefetchAfter)
	_, err = f.v.Verify(ctx, f.p.Sign(t, "next", f.claims(), nil))
	require.NoError(t, err)
	require.Equal(t, 2, f.p.Fetches())

	// A retired key stops verifying at the periodic refresh.
	f.p.Publish("next")
	_, err = f.v.Verify(ctx, f.p.Sign(t, "rsa", f.claims(), nil))
	require.NoError(t, err, "still cached")
	f.clock.Add(idp.RefreshEvery)
	_, err = f.v.Verify(ctx, f.p.Sign(t, "rsa", f.claims(), nil))
	require.ErrorIs(t, err, auth.ErrInvalidToken)
	require.Equal(t, 3, f.p.Fetches())

	// No JWKS reachable and nothing cached: a failure to decide.
	v, err := idp.New(idp.Params{Issuer: issuer, Audience: audience, JWKSURL: "http://127.0.0.1:1/jwks"}, &idp.Opts{Now: f.clock.Now})
	require.NoError(t, err)
	_, err = v.Verify(ctx, f.p.Sign(t, "next", f.claims(), nil))
	require.Error(t, err)
	require.NotErrorIs(t, err, auth.ErrInvalidToken)
}

func TestPeekIssuer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	iss, ok := idp.PeekIssuer(f.p.Sign(t, "ed", f.claims(), nil))
	require.True(t, ok)
	require.Equal(t, issuer, iss)
	for _, bad := range []string{"", "qk_live_abc", "a.b.c", f.p.Sign(t, "ed", f.claims("iss", nil), nil),
		f.p.Sign(t, "ed", f.claims("pad", strings.Repeat("x", idp.MaxTokenSize)), nil)} {
		_, ok := idp.PeekIssuer(bad)
		require.False(t, ok)
	}
}
