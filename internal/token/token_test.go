package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

const (
	testUser   = "0b9f6a3e-5c1d-4f3a-9d7e-2a6b8c4e1f00"
	testTenant = "7d2c1e4b-8a9f-4b6c-a3d5-e1f2a3b4c5d6"
)

// now is a fixed instant with no sub-second part, so claims round-trip exactly.
var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func newIssuer(t testing.TB) *Issuer {
	t.Helper()
	keys, err := NewKeySet(nil)
	require.NoError(t, err)
	return &Issuer{Keys: keys, Issuer: "https://quarters.test", Audience: "quarters-api", TTL: 10 * time.Minute}
}

func testClaims() Claims {
	c := Claims{TenantID: testTenant, Role: RoleAdmin, Version: 7}
	c.Subject = testUser
	return c
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func b64JSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b64(b)
}

// forge signs payload under header with key using method, bypassing Sign so
// a test can build any token an attacker could.
func forge(t *testing.T, method jwt.SigningMethod, header, payload map[string]any, key any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, jwt.MapClaims(payload))
	tok.Header = header
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

func TestSignVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	s, err := iss.Sign(testClaims(), now)
	require.NoError(t, err)

	got, err := iss.Verify(s, now.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, testUser, got.Subject)
	require.Equal(t, testTenant, got.TenantID)
	require.Equal(t, RoleAdmin, got.Role)
	require.Equal(t, int64(7), got.Version)
	require.Equal(t, "https://quarters.test", got.Issuer)
	require.Equal(t, jwt.ClaimStrings{"quarters-api"}, got.Audience)
	require.True(t, got.IssuedAt.Equal(now))
	require.True(t, got.NotBefore.Equal(now))
	require.True(t, got.ExpiresAt.Equal(now.Add(10*time.Minute)))
	jti, err := base64.RawURLEncoding.DecodeString(got.ID)
	require.NoError(t, err)
	require.Len(t, jti, 16)

	head, _, ok := strings.Cut(s, ".")
	require.True(t, ok)
	hb, err := base64.RawURLEncoding.DecodeString(head)
	require.NoError(t, err)
	var h map[string]any
	require.NoError(t, json.Unmarshal(hb, &h))
	require.Equal(t, map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": iss.Keys.Current()}, h)

	s2, err := iss.Sign(testClaims(), now)
	require.NoError(t, err)
	got2, err := iss.Verify(s2, now)
	require.NoError(t, err)
	require.NotEqual(t, got.ID, got2.ID, "jti must be fresh per token")
}

func TestSignOverwritesRegisteredClaims(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	c := testClaims()
	c.Issuer = "evil"
	c.Audience = jwt.ClaimStrings{"other"}
	c.ID = "chosen"
	c.ExpiresAt = jwt.NewNumericDate(now.Add(24 * time.Hour))
	s, err := iss.Sign(c, now)
	require.NoError(t, err)
	got, err := iss.Verify(s, now)
	require.NoError(t, err)
	require.Equal(t, "https://quarters.test", got.Issuer)
	require.Equal(t, jwt.ClaimStrings{"quarters-api"}, got.Audience)
	require.NotEqual(t, "chosen", got.ID)
	require.True(t, got.ExpiresAt.Equal(now.Add(10*time.Minute)))
}

func TestSignRefuses(t *testing.T) {
	t.Parallel()
	short, err := NewKeySet(&KeySetOpts{Retain: 5 * time.Minute})
	require.NoError(t, err)
	tests := []struct {
		name   string
		modify func(*Issuer, *Claims)
	}{
		{"ttl zero", func(i *Issuer, _ *Claims) { i.TTL = 0 }},
		{"ttl over max", func(i *Issuer, _ *Claims) { i.TTL = MaxTTL + time.Second }},
		{"ttl outlives retention", func(i *Issuer, _ *Claims) { i.Keys = short }},
		{"no issuer", func(i *Issuer, _ *Claims) { i.Issuer = "" }},
		{"no audience", func(i *Issuer, _ *Claims) { i.Audience = "" }},
		{"no keys", func(i *Issuer, _ *Claims) { i.Keys = nil }},
		{"subject not uuid", func(_ *Issuer, c *Claims) { c.Subject = "alice" }},
		{"tenant not uuid", func(_ *Issuer, c *Claims) { c.TenantID = "" }},
		{"unknown role", func(_ *Issuer, c *Claims) { c.Role = "superuser" }},
		{"negative version", func(_ *Issuer, c *Claims) { c.Version = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			iss, c := newIssuer(t), testClaims()
			_, err := iss.Sign(c, now)
			require.NoError(t, err, "control: unmodified issuer and claims must sign")
			tt.modify(iss, &c)
			s, err := iss.Sign(c, now)
			require.Error(t, err)
			require.Empty(t, s)
		})
	}
}

func TestVerifyRejectsHostileTokens(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	own := iss.Keys.current()
	kid := own.kid
	attackerPub, attackerPriv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	attackerJWK := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(attackerPub)}

	header := func(edits map[string]any) map[string]any {
		h := map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": kid}
		for k, v := range edits {
			if v == nil {
				delete(h, k)
			} else {
				h[k] = v
			}
		}
		return h
	}
	payload := func(edits map[string]any) map[string]any {
		p := map[string]any{
			"sub": testUser, "tid": testTenant, "role": "member", "ver": 3,
			"jti": "abc", "iss": iss.Issuer, "aud": iss.Audience,
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		}
		for k, v := range edits {
			if v == nil {
				delete(p, k)
			} else {
				p[k] = v
			}
		}
		return p
	}
	edDSA := func(h, p map[string]any) string { return forge(t, jwt.SigningMethodEdDSA, h, p, own.priv) }

	// The forging helpers must produce a token Verify accepts, or every
	// rejection below could be the helpers' fault rather than Verify's.
	_, err = iss.Verify(edDSA(header(nil), payload(nil)), now)
	require.NoError(t, err, "control token")

	valid, err := iss.Sign(testClaims(), now)
	require.NoError(t, err)
	parts := strings.Split(valid, ".")
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var tampered map[string]any
	require.NoError(t, json.Unmarshal(pb, &tampered))
	tampered["role"] = RoleOwner

	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"alg none", forge(t, jwt.SigningMethodNone, header(map[string]any{"alg": "none"}), payload(nil), jwt.UnsafeAllowNoneSignatureType), "bad signature or algorithm"},
		{"alg none without signature dot", b64JSON(t, header(map[string]any{"alg": "none"})) + "." + b64JSON(t, payload(nil)), "malformed"},
		{"hs256 keyed with public key", forge(t, jwt.SigningMethodHS256, header(map[string]any{"alg": "HS256"}), payload(nil), []byte(own.pub)), "bad signature or algorithm"},
		{"hs256 keyed with jwks", forge(t, jwt.SigningMethodHS256, header(map[string]any{"alg": "HS256"}), payload(nil), iss.Keys.PublicJWKS()), "bad signature or algorithm"},
		{"rs256 header", b64JSON(t, header(map[string]any{"alg": "RS256"})) + "." + b64JSON(t, payload(nil)) + "." + b64(make([]byte, 256)), "bad signature or algorithm"},
		{"alg lowercase eddsa", b64JSON(t, header(map[string]any{"alg": "eddsa"})) + "." + b64JSON(t, payload(nil)) + "." + b64(make([]byte, 64)), "unverifiable"},
		{"unknown kid", edDSA(header(map[string]any{"kid": "AAAAAAAAAAA"}), payload(nil)), "unknown kid"},
		{"missing kid", edDSA(header(map[string]any{"kid": nil}), payload(nil)), "missing kid"},
		{"kid not a string", edDSA(header(map[string]any{"kid": 1}), payload(nil)), "missing kid"},
		{"wrong typ", edDSA(header(map[string]any{"typ": "JWT"}), payload(nil)), "wrong typ"},
		{"missing typ", edDSA(header(map[string]any{"typ": nil}), payload(nil)), "wrong typ"},
		{"wrong iss", edDSA(header(nil), payload(map[string]any{"iss": "https://evil.test"})), "wrong issuer"},
		{"missing iss", edDSA(header(nil), payload(map[string]any{"iss": nil})), "missing claim"},
		{"wrong aud", edDSA(header(nil), payload(map[string]any{"aud": "other-api"})), "wrong audience"},
		{"extra aud", edDSA(header(nil), payload(map[string]any{"aud": []string{iss.Audience, "other-api"}})), "wrong audience"},
		{"missing aud", edDSA(header(nil), payload(map[string]any{"aud": nil})), "missing claim"},
		{"expired beyond leeway", edDSA(header(nil), payload(map[string]any{"exp": now.Add(-Leeway - time.Second).Unix()})), "expired"},
		{"missing exp", edDSA(header(nil), payload(map[string]any{"exp": nil})), "missing claim"},
		{"nbf beyond leeway", edDSA(header(nil), payload(map[string]any{"nbf": now.Add(Leeway + time.Second).Unix()})), "not valid yet"},
		{"missing nbf", edDSA(header(nil), payload(map[string]any{"nbf": nil})), "missing claim"},
		{"iat beyond leeway", edDSA(header(nil), payload(map[string]any{"iat": now.Add(Leeway + time.Second).Unix()})), "issued in the future"},
		{"missing iat", edDSA(header(nil), payload(map[string]any{"iat": nil})), "missing claim"},
		{"missing jti", edDSA(header(nil), payload(map[string]any{"jti": nil})), "missing claim"},
		{"unknown role", edDSA(header(nil), payload(map[string]any{"role": "superuser"})), "unknown role"},
		{"subject not uuid", edDSA(header(nil), payload(map[string]any{"sub": "alice"})), "subject is not a uuid"},
		{"tenant not uuid", edDSA(header(nil), payload(map[string]any{"tid": "*"})), "tenant id is not a uuid"},
		{"tampered role", parts[0] + "." + b64JSON(t, tampered) + "." + parts[2], "bad signature or algorithm"},
		{"signature stripped", parts[0] + "." + parts[1] + ".", "bad signature or algorithm"},
		{"signature padded", valid + "=", "malformed"},
		{"other key with colliding kid", forge(t, jwt.SigningMethodEdDSA, header(nil), payload(nil), attackerPriv), "bad signature or algorithm"},
		{"attacker jwk header", forge(t, jwt.SigningMethodEdDSA, header(map[string]any{"kid": keyID(attackerPub), "jwk": attackerJWK}), payload(nil), attackerPriv), "unexpected header"},
		{"attacker jwk header with our kid", forge(t, jwt.SigningMethodEdDSA, header(map[string]any{"jwk": attackerJWK}), payload(nil), attackerPriv), "unexpected header"},
		{"jwk header on our own signature", edDSA(header(map[string]any{"jwk": attackerJWK}), payload(nil)), "unexpected header"},
		{"jku header", edDSA(header(map[string]any{"jku": "https://evil.test/jwks"}), payload(nil)), "unexpected header"},
		{"x5u header", edDSA(header(map[string]any{"x5u": "https://evil.test/cert"}), payload(nil)), "unexpected header"},
		{"crit header", edDSA(header(map[string]any{"crit": []string{"exp"}}), payload(nil)), "unexpected header"},
		{"oversized but validly signed", edDSA(header(nil), payload(map[string]any{"pad": strings.Repeat("x", MaxTokenSize)})), "too long"},
		{"1 MB of dots", strings.Repeat(".", 1<<20), "too long"},
		{"just over size limit", valid + strings.Repeat("A", MaxTokenSize), "too long"},
		{"empty", "", "malformed"},
		{"two segments", parts[0] + "." + parts[1], "malformed"},
		{"garbage", "not a token", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := iss.Verify(tt.token, now)
			require.ErrorIs(t, err, ErrInvalidToken)
			// The reason pins which check refused the token, so a case cannot
			// pass by tripping over some unrelated defect in its construction.
			require.EqualError(t, err, "invalid access token: "+tt.reason)
			require.Zero(t, c, "no claims on failure")
			msg := err.Error()
			require.Less(t, len(msg), 80, "error must not echo the token: %q", msg)
			for _, part := range strings.Split(tt.token, ".") {
				if len(part) >= 8 {
					require.NotContains(t, msg, part[:8])
				}
			}
		})
	}
}

func TestVerifyReasons(t *testing.T) {
	t.Parallel()
	// The reason is what an operator reads in the log; check a few map to
	// the right words rather than a catch-all.
	iss := newIssuer(t)
	s, err := iss.Sign(testClaims(), now)
	require.NoError(t, err)
	_, err = iss.Verify(s, now.Add(time.Hour))
	require.EqualError(t, err, "invalid access token: expired")
	_, err = iss.Verify(s, now.Add(-time.Hour))
	require.ErrorContains(t, err, "not valid yet")
	other := newIssuer(t)
	_, err = other.Verify(s, now)
	require.EqualError(t, err, "invalid access token: unknown kid")
}

func TestVerifyLeeway(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	s, err := iss.Sign(testClaims(), now)
	require.NoError(t, err)
	exp := now.Add(iss.TTL)
	tests := []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"just before exp", exp.Add(-time.Second), true},
		{"expired within leeway", exp.Add(Leeway - time.Second), true},
		{"expired beyond leeway", exp.Add(Leeway + time.Second), false},
		{"clock behind within leeway", now.Add(-Leeway + time.Second), true},
		{"clock behind beyond leeway", now.Add(-Leeway - time.Second), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := iss.Verify(s, tt.at)
			if tt.ok {
				require.NoError(t, err)
				require.Equal(t, testUser, c.Subject)
			} else {
				require.ErrorIs(t, err, ErrInvalidToken)
			}
		})
	}
}

func TestVerifyMisconfigured(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	s, err := iss.Sign(testClaims(), now)
	require.NoError(t, err)
	iss.Audience = ""
	_, err = iss.Verify(s, now)
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrInvalidToken, "a config error is not the client's fault")
}

func TestRotate(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	oldKid := iss.Keys.Current()
	old, err := iss.Sign(testClaims(), now)
	require.NoError(t, err)

	rotatedAt := now.Add(time.Minute)
	require.NoError(t, iss.Keys.Rotate(rotatedAt))
	newKid := iss.Keys.Current()
	require.NotEqual(t, oldKid, newKid)
	fresh, err := iss.Sign(testClaims(), rotatedAt)
	require.NoError(t, err)
	require.Equal(t, newKid, headerKid(t, fresh))

	// The old token stays good until it expires, even across a Prune.
	lastGood := now.Add(iss.TTL + Leeway - time.Second)
	iss.Keys.Prune(lastGood)
	_, err = iss.Verify(old, lastGood)
	require.NoError(t, err)
	require.Len(t, jwksKids(t, iss.Keys), 2)

	// Once retention ends Prune drops the key; verifying at the earlier time
	// shows the key itself is gone, not just the token expired.
	iss.Keys.Prune(rotatedAt.Add(MaxTTL + Leeway))
	_, err = iss.Verify(old, now.Add(2*time.Minute))
	require.EqualError(t, err, "invalid access token: unknown kid")
	_, err = iss.Verify(fresh, now.Add(2*time.Minute))
	require.NoError(t, err)
	require.Equal(t, []string{newKid}, jwksKids(t, iss.Keys))
}

func TestRetiredKeyRefusedAfterRetentionWithoutPrune(t *testing.T) {
	t.Parallel()
	keys, err := NewKeySet(nil)
	require.NoError(t, err)
	kid := keys.Current()
	require.NoError(t, keys.Rotate(now))
	end := now.Add(MaxTTL + Leeway)
	_, ok := keys.verificationKey(kid, end.Add(-time.Nanosecond))
	require.True(t, ok)
	_, ok = keys.verificationKey(kid, end)
	require.False(t, ok)
	_, ok = keys.verificationKey(keys.Current(), end.Add(time.Hour))
	require.True(t, ok, "the current key never lapses")
}

func headerKid(t *testing.T, s string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(s, jwt.MapClaims{})
	require.NoError(t, err)
	kid, _ := tok.Header["kid"].(string)
	return kid
}

func jwksKids(t *testing.T, s *KeySet) []string {
	t.Helper()
	var set struct{ Keys []jwk }
	require.NoError(t, json.Unmarshal(s.PublicJWKS(), &set))
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

func TestPublicJWKS(t *testing.T) {
	t.Parallel()
	keys, err := NewKeySet(nil)
	require.NoError(t, err)
	require.NoError(t, keys.Rotate(now))
	want := map[string]ed25519.PublicKey{}
	for _, k := range keys.keys {
		want[k.kid] = k.pub
	}
	require.Len(t, want, 2)

	var set map[string][]map[string]string
	require.NoError(t, json.Unmarshal(keys.PublicJWKS(), &set))
	require.Len(t, set, 1, "only the keys member")
	got := map[string]ed25519.PublicKey{}
	for _, k := range set["keys"] {
		require.Equal(t, "OKP", k["kty"])
		require.Equal(t, "Ed25519", k["crv"])
		require.Equal(t, "EdDSA", k["alg"])
		require.Equal(t, "sig", k["use"])
		require.NotContains(t, k, "d", "private part must not be published")
		x, err := base64.RawURLEncoding.DecodeString(k["x"])
		require.NoError(t, err)
		require.Len(t, x, ed25519.PublicKeySize)
		require.Equal(t, k["kid"], keyID(x))
		got[k["kid"]] = x
	}
	require.Equal(t, want, got)
}

func TestJWKSHandler(t *testing.T) {
	t.Parallel()
	keys, err := NewKeySet(nil)
	require.NoError(t, err)
	h := keys.JWKSHandler()

	rec := httptestGet(h, "GET")
	require.Equal(t, 200, rec.Code)
	require.Equal(t, "application/jwk-set+json", rec.Header().Get("Content-Type"))
	require.Equal(t, "public, max-age=300", rec.Header().Get("Cache-Control"))
	require.JSONEq(t, string(keys.PublicJWKS()), rec.Body.String())

	// A rotation shows on the next request, not after a restart.
	require.NoError(t, keys.Rotate(now))
	rec = httptestGet(h, "GET")
	require.Contains(t, rec.Body.String(), keys.Current())

	rec = httptestGet(h, "HEAD")
	require.Equal(t, 200, rec.Code)
	require.Empty(t, rec.Body.String())

	rec = httptestGet(h, "POST")
	require.Equal(t, 405, rec.Code)
}

func TestLoadKeySetRoundTrip(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	byOld, err := iss.Sign(testClaims(), now)
	require.NoError(t, err)
	require.NoError(t, iss.Keys.Rotate(now))
	byNew, err := iss.Sign(testClaims(), now)
	require.NoError(t, err)

	data, err := iss.Keys.MarshalPrivate()
	require.NoError(t, err)
	loaded, err := LoadKeySet(data)
	require.NoError(t, err)
	require.Equal(t, iss.Keys.Current(), loaded.Current())
	require.Equal(t, iss.Keys.PublicJWKS(), loaded.PublicJWKS())

	replica := &Issuer{Keys: loaded, Issuer: iss.Issuer, Audience: iss.Audience, TTL: iss.TTL}
	for _, s := range []string{byOld, byNew} {
		c, err := replica.Verify(s, now.Add(time.Minute))
		require.NoError(t, err)
		require.Equal(t, testUser, c.Subject)
	}
	// And the other way: what the replica signs, the original accepts.
	s, err := replica.Sign(testClaims(), now)
	require.NoError(t, err)
	_, err = iss.Verify(s, now)
	require.NoError(t, err)

	// The retired key's retention survives the round trip.
	end := now.Add(MaxTTL + Leeway)
	loaded.Prune(end)
	require.Equal(t, []string{loaded.Current()}, jwksKids(t, loaded))
}

func TestLoadKeySetRejects(t *testing.T) {
	t.Parallel()
	keys, err := NewKeySet(nil)
	require.NoError(t, err)
	require.NoError(t, keys.Rotate(now))
	data, err := keys.MarshalPrivate()
	require.NoError(t, err)
	var good map[string]any
	require.NoError(t, json.Unmarshal(data, &good))
	_, err = LoadKeySet(data)
	require.NoError(t, err, "control")

	edit := func(f func(m map[string]any, ks []any)) []byte {
		m := maps.Clone(good)
		ks := make([]any, 0, 2)
		for _, k := range good["keys"].([]any) {
			ks = append(ks, maps.Clone(k.(map[string]any)))
		}
		m["keys"] = ks
		f(m, ks)
		b, err := json.Marshal(m)
		require.NoError(t, err)
		return b
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"not json", []byte("{")},
		{"no keys", []byte(`{"retain_ns":1,"keys":[]}`)},
		{"negative retention", edit(func(m map[string]any, _ []any) { m["retain_ns"] = -1 })},
		{"short seed", edit(func(_ map[string]any, ks []any) { ks[0].(map[string]any)["seed"] = b64(make([]byte, 31)) })},
		{"seed not base64", edit(func(_ map[string]any, ks []any) { ks[0].(map[string]any)["seed"] = "!!" })},
		{"duplicate key", edit(func(m map[string]any, ks []any) {
			ks[1].(map[string]any)["seed"] = ks[0].(map[string]any)["seed"]
		})},
		{"current has not_after", edit(func(_ map[string]any, ks []any) { ks[1].(map[string]any)["not_after"] = now })},
		{"retired lacks not_after", edit(func(_ map[string]any, ks []any) { delete(ks[0].(map[string]any), "not_after") })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := LoadKeySet(tt.data)
			require.Error(t, err)
			require.Nil(t, s)
		})
	}
}

func TestConcurrentRotateAndVerify(t *testing.T) {
	t.Parallel()
	// Run under -race: rotation must not race with signing or verifying.
	iss := newIssuer(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				s, err := iss.Sign(testClaims(), now)
				require.NoError(t, err)
				_, err = iss.Verify(s, now)
				require.NoError(t, err)
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			require.NoError(t, iss.Keys.Rotate(now))
			iss.Keys.Prune(now)
			_ = iss.Keys.PublicJWKS()
		}
	})
	wg.Wait()
}

func BenchmarkSign(b *testing.B) {
	iss := newIssuer(b)
	c := testClaims()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := iss.Sign(c, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	iss := newIssuer(b)
	s, err := iss.Sign(testClaims(), now)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := iss.Verify(s, now); err != nil {
			b.Fatal(err)
		}
	}
}

func httptestGet(h http.Handler, method string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, "/.well-known/jwks.json", nil))
	return rec
}
