package authsvc_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/internal/servertest"
	"github.com/quarters-dev/quarters/internal/session"
)

// jwksKey is one key of the published set, as an outside verifier reads it.
type jwksKey struct {
	Kty, Crv, X, Kid, Alg, Use string
}

// fetchJWKS gets the server's published keys over HTTP.
func fetchJWKS(t *testing.T, s *servertest.Server) []jwksKey {
	t.Helper()
	resp, err := s.HTTP.Get(s.URL + "/.well-known/jwks.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/jwk-set+json", resp.Header.Get("Content-Type"))
	require.Equal(t, "public, max-age=300", resp.Header.Get("Cache-Control"))
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var set struct{ Keys []jwksKey }
	require.NoError(t, json.Unmarshal(body, &set))
	require.NotContains(t, string(body), `"d"`, "no private key material")
	require.NotEmpty(t, set.Keys)
	return set.Keys
}

func jwksKids(keys []jwksKey) []string {
	kids := make([]string, len(keys))
	for i, k := range keys {
		kids[i] = k.Kid
	}
	return kids
}

// verifyWithJWKS checks tok the way a service outside Quarters would: with
// golang-jwt and only the published keys, EdDSA only, the key chosen by kid.
func verifyWithJWKS(keys []jwksKey, tok string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		for _, k := range keys {
			if k.Kid != kid {
				continue
			}
			if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Alg != "EdDSA" || k.Use != "sig" {
				return nil, errors.New("unexpected key type")
			}
			x, err := base64.RawURLEncoding.DecodeString(k.X)
			if err != nil || len(x) != ed25519.PublicKeySize {
				return nil, errors.New("bad x")
			}
			return ed25519.PublicKey(x), nil
		}
		return nil, errors.New("kid not published")
	},
		jwt.WithValidMethods([]string{"EdDSA"}),
		jwt.WithIssuer(session.DefaultIssuer),
		jwt.WithAudience(session.DefaultAudience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	)
	return claims, err
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	keys := fetchJWKS(t, s)
	require.Equal(t, []string{s.Sessions.Keys().Current()}, jwksKids(keys))

	tok := a.Owner.GetAccessToken()
	claims, err := verifyWithJWKS(keys, tok)
	require.NoError(t, err)
	require.Equal(t, session.DefaultIssuer, claims["iss"])
	aud, err := claims.GetAudience()
	require.NoError(t, err)
	require.Equal(t, jwt.ClaimStrings{session.DefaultAudience}, aud)
	require.Equal(t, a.Owner.GetUser().GetId(), claims["sub"])
	require.Equal(t, a.ID, claims["tid"])
	require.Equal(t, "owner", claims["role"])
	require.NotEmpty(t, claims["jti"])
	iat, err := claims.GetIssuedAt()
	require.NoError(t, err)
	exp, err := claims.GetExpirationTime()
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), iat.Time, time.Minute)
	require.Positive(t, exp.Sub(iat.Time))
	require.LessOrEqual(t, exp.Sub(iat.Time), 15*time.Minute)
	require.Equal(t, a.Owner.GetAccessTokenExpireTime().AsTime().Unix(), exp.Unix())

	// A tampered token fails the outside check too, so the check above
	// could have failed.
	tampered := []byte(tok)
	tampered[len(tampered)-2] ^= 1
	_, err = verifyWithJWKS(keys, string(tampered))
	require.Error(t, err)
}

// TestJWKSFollowsRotation: the endpoint serves the key set in use at the
// time of the request, on every replica, retired keys included while their
// tokens may live.
func TestJWKSFollowsRotation(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	replica := servertest.NewWith(t, &servertest.Opts{Share: s})
	a := s.SignUp(t)
	kid0 := s.Sessions.Keys().Current()
	require.Equal(t, []string{kid0}, jwksKids(fetchJWKS(t, replica)), "one key set for both")

	require.NoError(t, s.Keys.Rotate(ctx))
	kid1 := s.Sessions.Keys().Current()
	require.NotEqual(t, kid0, kid1)
	keys := fetchJWKS(t, s)
	require.Equal(t, []string{kid0, kid1}, jwksKids(keys))
	_, err := verifyWithJWKS(keys, a.Owner.GetAccessToken())
	require.NoError(t, err, "the retired key still verifies its tokens")

	require.NoError(t, replica.Keys.Reload(ctx))
	require.Equal(t, []string{kid0, kid1}, jwksKids(fetchJWKS(t, replica)))

	// A token signed after the rotation carries the new kid and verifies
	// with the published set.
	b := s.SignUp(t)
	h, _, err := jwt.NewParser().ParseUnverified(b.Owner.GetAccessToken(), jwt.MapClaims{})
	require.NoError(t, err)
	require.Equal(t, kid1, h.Header["kid"])
	_, err = verifyWithJWKS(keys, b.Owner.GetAccessToken())
	require.NoError(t, err)
}
