// Package idptest runs a stand-in identity provider for tests: an
// httptest server publishing a JWKS of keys generated in the test, and a
// signer for tokens under them. Import it only from tests.
package idptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// Key types AddKey generates.
const (
	RSA     = "RSA"
	EC      = "EC"
	Ed25519 = "Ed25519"
)

// Provider is a running stand-in identity provider.
type Provider struct {
	// JWKSURL serves the published keys.
	JWKSURL string
	fetches atomic.Int64

	mu        sync.Mutex
	keys      map[string]key
	published []string
}

type key struct {
	priv   crypto.Signer
	method jwt.SigningMethod
	jwk    map[string]any
}

// New starts a provider with no keys; it stops at test cleanup.
func New(t testing.TB) *Provider {
	t.Helper()
	p := &Provider{keys: map[string]key{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		p.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(p.JWKS())
	}))
	t.Cleanup(srv.Close)
	p.JWKSURL = srv.URL + "/jwks.json"
	return p
}

// AddKey generates a key of kind (RSA, EC or Ed25519) under kid; it is
// published only once Publish names it.
func (p *Provider) AddKey(t testing.TB, kid, kind string) {
	t.Helper()
	var k key
	switch kind {
	case RSA:
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
		k = key{priv: priv, method: jwt.SigningMethodRS256, jwk: map[string]any{
			"kty": "RSA", "n": b64(priv.N.Bytes()), "e": b64(big.NewInt(int64(priv.E)).Bytes()),
		}}
	case EC:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		pt, err := priv.PublicKey.Bytes()
		require.NoError(t, err)
		k = key{priv: priv, method: jwt.SigningMethodES256, jwk: map[string]any{
			"kty": "EC", "crv": "P-256", "x": b64(pt[1:33]), "y": b64(pt[33:]),
		}}
	case Ed25519:
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		k = key{priv: priv, method: jwt.SigningMethodEdDSA, jwk: map[string]any{
			"kty": "OKP", "crv": "Ed25519", "x": b64(pub),
		}}
	default:
		t.Fatalf("idptest: unknown key kind %q", kind)
	}
	k.jwk["kid"], k.jwk["use"] = kid, "sig"
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys[kid] = k
}

// Publish makes the JWKS publish exactly the keys kids.
func (p *Provider) Publish(kids ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.published = kids
}

// JWKS is the document the provider serves.
func (p *Provider) JWKS() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	set := struct {
		Keys []map[string]any `json:"keys"`
	}{Keys: []map[string]any{}}
	for _, kid := range p.published {
		set.Keys = append(set.Keys, p.keys[kid].jwk)
	}
	b, _ := json.Marshal(set)
	return b
}

// Fetches counts the JWKS requests served.
func (p *Provider) Fetches() int { return int(p.fetches.Load()) }

// Public is the public key kid, as an attacker may know it.
func (p *Provider) Public(kid string) crypto.PublicKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[kid].priv.Public()
}

// Sign signs claims with the key kid (which need not be published), with
// kid in the header and any extra header fields.
func (p *Provider) Sign(t testing.TB, kid string, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	p.mu.Lock()
	k, ok := p.keys[kid]
	p.mu.Unlock()
	require.True(t, ok, "idptest: no key %q", kid)
	tok := jwt.NewWithClaims(k.method, claims)
	tok.Header["kid"] = kid
	for h, v := range header {
		tok.Header[h] = v
	}
	s, err := tok.SignedString(k.priv)
	require.NoError(t, err)
	return s
}

// Forge signs claims with any method and key, bypassing the provider's
// keys, under header (used as given): the tokens an attacker could build.
func Forge(t testing.TB, method jwt.SigningMethod, header map[string]any, claims jwt.MapClaims, signingKey any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header = header
	s, err := tok.SignedString(signingKey)
	require.NoError(t, err)
	return s
}

// JWK is the public JWK of kid, for tests that embed it in a header.
func (p *Provider) JWK(kid string) map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[kid].jwk
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// With returns c changed by kv, pairs of claim name and value: a nil value
// deletes the claim. Tests start from valid claims and break one thing.
func With(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}
