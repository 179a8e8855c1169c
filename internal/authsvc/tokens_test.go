package authsvc_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/servertest"
	"github.com/quarters-dev/quarters/internal/tenant"
	"github.com/quarters-dev/quarters/internal/token"
)

// serverSigningKey returns the private key s signs access tokens with, and
// its kid, read from the key set's saved form, so tests can forge tokens
// that only the check under test should refuse.
func serverSigningKey(t *testing.T, s *servertest.Server) (ed25519.PrivateKey, string) {
	t.Helper()
	data, err := s.Sessions.Keys().MarshalPrivate()
	require.NoError(t, err)
	var saved struct{ Keys []struct{ Seed string } }
	require.NoError(t, json.Unmarshal(data, &saved))
	seed, err := base64.RawURLEncoding.DecodeString(saved.Keys[len(saved.Keys)-1].Seed)
	require.NoError(t, err)
	return ed25519.NewKeyFromSeed(seed), s.Sessions.Keys().Current()
}

// forgeToken signs claims with key under method, with the headers of an
// access token (typ at+jwt, kid) changed by header (a nil value drops one).
func forgeToken(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["typ"] = "at+jwt"
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

// tokenClaims decodes a token's payload without checking it.
func tokenClaims(t *testing.T, tok string) jwt.MapClaims {
	t.Helper()
	c := jwt.MapClaims{}
	_, _, err := jwt.NewParser().ParseUnverified(tok, c)
	require.NoError(t, err)
	return c
}

// withClaims copies c with changes applied; a nil value drops a claim.
func withClaims(c jwt.MapClaims, changes jwt.MapClaims) jwt.MapClaims {
	out := maps.Clone(c)
	for k, v := range changes {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// replacePayload swaps a token's payload, keeping its header and signature.
func replacePayload(t *testing.T, tok string, c jwt.MapClaims) string {
	t.Helper()
	b, err := json.Marshal(c)
	require.NoError(t, err)
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

func listProjectsWith(s *servertest.Server, tn *servertest.Tenant, bearer string) error {
	_, err := s.As(tn.ID, tn.Slug, bearer).Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	return err
}

// TestHostileAccessTokens sends tokens an attacker could build to an
// authenticated RPC: each is UNAUTHENTICATED, with the one message every
// refused token gets. The first case, forged the same way with nothing
// wrong, shows the forging is sound, so each other case fails for its own
// defect.
func TestHostileAccessTokens(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a, b := s.SignUp(t), s.SignUp(t)
	s.Unthrottle(t, a.ID)
	priv, kid := serverSigningKey(t, s)
	pub := priv.Public().(ed25519.PublicKey)
	_, otherPriv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	other := servertest.New(t).SignUp(t).Owner.GetAccessToken()

	owner := a.Owner.GetAccessToken()
	base := tokenClaims(t, owner)
	now := time.Now()
	fresh := withClaims(base, jwt.MapClaims{
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		"jti": uuid.NewString(),
	})
	ed := func(c jwt.MapClaims) string {
		return forgeToken(t, jwt.SigningMethodEdDSA, priv, map[string]any{"kid": kid}, c)
	}

	require.NoError(t, listProjectsWith(s, a, owner))
	require.NoError(t, listProjectsWith(s, a, ed(fresh)), "a token forged with the server's key and nothing wrong is accepted")

	tests := []struct {
		name  string
		token string
	}{
		{"alg none", forgeToken(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, map[string]any{"kid": kid}, fresh)},
		{"alg none, empty kid", forgeToken(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, map[string]any{"kid": nil}, fresh)},
		{"HS256 keyed with the public key", forgeToken(t, jwt.SigningMethodHS256, []byte(pub), map[string]any{"kid": kid}, fresh)},
		{"HS256 keyed with the JWK's x", forgeToken(t, jwt.SigningMethodHS256, []byte(base64.RawURLEncoding.EncodeToString(pub)), map[string]any{"kid": kid}, fresh)},
		{"unknown kid, another key", forgeToken(t, jwt.SigningMethodEdDSA, otherPriv, map[string]any{"kid": "AAAAAAAAAAA"}, fresh)},
		{"server's kid, another key", forgeToken(t, jwt.SigningMethodEdDSA, otherPriv, map[string]any{"kid": kid}, fresh)},
		{"no kid", forgeToken(t, jwt.SigningMethodEdDSA, priv, map[string]any{"kid": nil}, fresh)},
		{"embedded jwk header", forgeToken(t, jwt.SigningMethodEdDSA, otherPriv, map[string]any{"kid": kid, "jwk": map[string]any{
			"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(otherPriv.Public().(ed25519.PublicKey)),
		}}, fresh)},
		{"typ JWT", forgeToken(t, jwt.SigningMethodEdDSA, priv, map[string]any{"kid": kid, "typ": "JWT"}, fresh)},
		{"wrong iss", ed(withClaims(fresh, jwt.MapClaims{"iss": "quarters-evil"}))},
		{"wrong aud", ed(withClaims(fresh, jwt.MapClaims{"aud": "another-api"}))},
		{"two audiences", ed(withClaims(fresh, jwt.MapClaims{"aud": []string{"quarters-api", "another-api"}}))},
		{"expired beyond leeway", ed(withClaims(fresh, jwt.MapClaims{
			"iat": now.Add(-20 * time.Minute).Unix(), "nbf": now.Add(-20 * time.Minute).Unix(),
			"exp": now.Add(-token.Leeway - time.Minute).Unix(),
		}))},
		{"no exp", ed(withClaims(fresh, jwt.MapClaims{"exp": nil}))},
		{"nbf in the future", ed(withClaims(fresh, jwt.MapClaims{"nbf": now.Add(5 * time.Minute).Unix()}))},
		{"iat in the future", ed(withClaims(fresh, jwt.MapClaims{"iat": now.Add(5 * time.Minute).Unix()}))},
		{"tampered: role", replacePayload(t, owner, withClaims(base, jwt.MapClaims{"role": "admin"}))},
		{"tampered: tenant B, as owner", replacePayload(t, owner, withClaims(base, jwt.MapClaims{"tid": b.ID}))},
		{"tampered: longer exp", replacePayload(t, owner, withClaims(base, jwt.MapClaims{"exp": now.Add(24 * time.Hour).Unix()}))},
		{"signature dropped", strings.Join(strings.Split(owner, ".")[:2], ".") + "."},
		{"tenant that does not exist", ed(withClaims(fresh, jwt.MapClaims{"tid": uuid.NewString()}))},
		{"tid not a uuid", ed(withClaims(fresh, jwt.MapClaims{"tid": a.Slug}))},
		{"user not a member", ed(withClaims(fresh, jwt.MapClaims{"sub": uuid.NewString()}))},
		{"B's owner in tenant A", ed(withClaims(fresh, jwt.MapClaims{"sub": b.Owner.GetUser().GetId()}))},
		{"stale version", ed(withClaims(fresh, jwt.MapClaims{"ver": base["ver"].(float64) + 1}))},
		{"unknown role", ed(withClaims(fresh, jwt.MapClaims{"role": "superuser"}))},
		{"role not held", ed(withClaims(fresh, jwt.MapClaims{"role": "member"}))},
		{"another server's token", other},
		{"oversized", ed(withClaims(fresh, jwt.MapClaims{"pad": strings.Repeat("x", token.MaxTokenSize)}))},
		{"garbage", "not.a.token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := listProjectsWith(s, a, tt.token)
			cerr := apitest.RequireCode(t, err, connect.CodeUnauthenticated)
			require.Equal(t, "invalid or expired access token: refresh it or sign in again", cerr.Message())
		})
	}
}

// TestHostileTokenMegabyteOfDots: a megabyte of dots never reaches the
// token parser as anything but "too long". Go's HTTP server accepts headers
// up to 1 MiB plus 4 KiB by default (test servers), so this one arrives and
// is UNAUTHENTICATED (HTTP 401); production sets MaxHeaderBytes to 64 KiB,
// where the server refuses it first with 431. Either is a refusal.
func TestHostileTokenMegabyteOfDots(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/quarters.v1.ProjectService/ListProjects", strings.NewReader("{}"))
	require.NoError(t, err)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+strings.Repeat(".", 1<<20))
	resp, err := s.HTTP.Do(r)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	var body struct{ Code string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Equal(t, "unauthenticated", body.Code)
}

// TestAccessTokenSelectors: a subdomain or X-Tenant-ID only selects, and
// must name the access token's own tenant, as with API keys.
func TestAccessTokenSelectors(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a, b := s.SignUp(t), s.SignUp(t)
	tok := a.Owner.GetAccessToken()
	list := func(baseURL string, opts ...connect.ClientOption) error {
		_, err := s.AsAt(baseURL, a.ID, a.Slug, tok, opts...).Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
		return err
	}
	header := func(v string) connect.ClientOption {
		return connect.WithInterceptors(servertest.Header(tenant.HeaderName, v))
	}

	require.NoError(t, list(s.SubdomainURL(a.Slug)))
	require.NoError(t, list(s.URL, header(a.ID)))
	require.NoError(t, list(s.URL, header(a.Slug)))

	for _, tt := range []struct {
		name, selector string
		err            error
	}{
		{"B's subdomain", "subdomain", list(s.SubdomainURL(b.Slug))},
		{"X-Tenant-ID: B's id", "header", list(s.URL, header(b.ID))},
		{"X-Tenant-ID: B's slug", "header", list(s.URL, header(b.Slug))},
		{"A's subdomain, X-Tenant-ID: B", "header", list(s.SubdomainURL(a.Slug), header(b.ID))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cerr := apitest.RequireCode(t, tt.err, connect.CodePermissionDenied)
			info := apitest.ErrorInfo(t, cerr)
			require.Equal(t, "TENANT_MISMATCH", info.GetReason())
			require.Equal(t, tt.selector, info.GetMetadata()["selector"])
		})
	}
}

// TestAccessTokensAcrossRotation: rotating the key set on one replica
// breaks no live token anywhere, and the other replica accepts the new
// key's tokens on first sight.
func TestAccessTokensAcrossRotation(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	replica := servertest.NewWith(t, &servertest.Opts{Share: s})
	a := s.SignUp(t)
	old := a.Owner.GetAccessToken()
	require.NoError(t, listProjectsWith(replica, a, old), "replicas share the key set")

	require.NoError(t, s.Keys.Rotate(ctx))
	require.NoError(t, listProjectsWith(s, a, old), "the retired key still verifies")
	require.NoError(t, listProjectsWith(replica, a, old))

	// The replica has not reloaded; the new kid makes it.
	b := s.SignUp(t)
	require.NotEqual(t, replica.Sessions.Keys().Current(), s.Sessions.Keys().Current())
	require.NoError(t, listProjectsWith(replica, b, b.Owner.GetAccessToken()))
	require.Equal(t, s.Sessions.Keys().Current(), replica.Sessions.Keys().Current())
	require.NoError(t, listProjectsWith(replica, a, old))
}

// TestRetiredKeyPastRetention: once a retired key's retention has ended
// its tokens are refused, even unexpired ones.
func TestRetiredKeyPastRetention(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	old := a.Owner.GetAccessToken()
	require.NoError(t, listProjectsWith(s, a, old))

	// Store the set as it would be had the key been retired an hour ago.
	stored, err := s.Sessions.Keys().MarshalPrivate()
	require.NoError(t, err)
	ks, err := token.LoadKeySet(stored)
	require.NoError(t, err)
	require.NoError(t, ks.Rotate(time.Now().Add(-time.Hour)))
	next, err := ks.MarshalPrivate()
	require.NoError(t, err)
	_, _, err = s.DB.UpdateTokenKeys(ctx, func([]byte, time.Time) ([]byte, time.Time, error) {
		return next, time.Now(), nil
	})
	require.NoError(t, err)
	require.NoError(t, s.Keys.Reload(ctx))
	require.Equal(t, ks.Current(), s.Sessions.Keys().Current())

	cerr := apitest.RequireCode(t, listProjectsWith(s, a, old), connect.CodeUnauthenticated)
	require.Equal(t, "invalid or expired access token: refresh it or sign in again", cerr.Message())
	b := s.SignUp(t)
	require.NoError(t, listProjectsWith(s, b, b.Owner.GetAccessToken()), "the new key signs and verifies")
}
