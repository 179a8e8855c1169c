package authsvc_test

import (
	"crypto/x509"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/idp"
	"github.com/quarters-dev/quarters/internal/idp/idptest"
	"github.com/quarters-dev/quarters/internal/servertest"
)

const (
	idpIssuer   = "https://idp.example"
	idpAudience = "quarters-api-idp"
)

// idpServer is a test server accepting tokens from a stand-in identity
// provider, whose verifier runs on a clock the test moves.
type idpServer struct {
	*servertest.Server
	p   *idptest.Provider
	now atomic.Int64
}

func newIDPServer(t *testing.T) *idpServer {
	t.Helper()
	x := &idpServer{p: idptest.New(t)}
	x.now.Store(time.Now().UnixNano())
	x.p.AddKey(t, "k1", idptest.RSA)
	x.p.Publish("k1")
	v, err := idp.New(idp.Params{Issuer: idpIssuer, Audience: idpAudience, JWKSURL: x.p.JWKSURL},
		&idp.Opts{Now: x.clock})
	require.NoError(t, err)
	x.Server = servertest.NewWith(t, &servertest.Opts{IDP: v})
	return x
}

func (x *idpServer) clock() time.Time     { return time.Unix(0, x.now.Load()) }
func (x *idpServer) wait(d time.Duration) { x.now.Add(int64(d)) }

// claims are an IdP token's claims for email in tenant, with kv (name,
// value; nil deletes) applied.
func (x *idpServer) claims(email, tenant string, kv ...any) jwt.MapClaims {
	now := x.clock()
	c := jwt.MapClaims{
		"iss": idpIssuer, "aud": idpAudience, "sub": "idp|" + email,
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
		"email": email, "email_verified": true, "tenant": tenant,
	}
	return idptest.With(c, kv...)
}

func (x *idpServer) as(tn *servertest.Tenant, token string) *servertest.Tenant {
	return x.As(tn.ID, tn.Slug, token)
}

// TestIDPToken: a provider's token for a member's email and their tenant
// acts as that member, with their Quarters role; the role and membership
// are Quarters', so changing or removing them applies on the next call.
func TestIDPToken(t *testing.T) {
	t.Parallel()
	x := newIDPServer(t)
	a := apitest.SignUpRoomy(t, x.Server)
	b := x.SignUp(t)
	annSess := apitest.Join(t, x.Server, a, "ann@example.com", quartersv1.Role_ROLE_MEMBER)
	annID := annSess.GetUser().GetId()

	// By slug, with the email in another case, and by tenant id.
	for _, tok := range []string{
		x.p.Sign(t, "k1", x.claims("Ann@Example.COM", a.Slug), nil),
		x.p.Sign(t, "k1", x.claims("ann@example.com", a.ID), nil),
	} {
		ann := x.as(a, tok)
		require.NoError(t, apitest.ListProjects(ann))
		me, err := ann.Members.GetCurrentUser(ctx, req(&quartersv1.GetCurrentUserRequest{}))
		require.NoError(t, err)
		require.Equal(t, annID, me.Msg.GetUser().GetId())
		require.Equal(t, a.ID, me.Msg.GetTenantId())
		require.Equal(t, quartersv1.Role_ROLE_MEMBER, me.Msg.GetRole())
		// A member is no admin, whatever the provider says.
		_, err = ann.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "friend@example.com", Role: quartersv1.Role_ROLE_MEMBER}))
		require.Contains(t, apitest.RequireCode(t, err, connect.CodePermissionDenied).Message(), "requires role admin")
	}
	ann := x.as(a, x.p.Sign(t, "k1", x.claims("ann@example.com", a.Slug, "role", "owner"), nil))
	_, err := ann.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "friend@example.com", Role: quartersv1.Role_ROLE_MEMBER}))
	apitest.RequireCode(t, err, connect.CodePermissionDenied)

	// The owner, by the provider's token, has the owner's powers.
	owner := x.as(a, x.p.Sign(t, "k1", x.claims(a.OwnerEmail, a.Slug), nil))
	apitest.Invite(t, owner, "carol@example.com", quartersv1.Role_ROLE_MEMBER)

	// Quarters' own tokens still work beside the provider's.
	require.NoError(t, apitest.ListProjects(x.AsUser(annSess)))

	// Ann is no member of b: a token naming b is refused.
	apitest.RequireCode(t, apitest.ListProjects(x.as(b, x.p.Sign(t, "k1", x.claims("ann@example.com", b.Slug), nil))), connect.CodeUnauthenticated)
	apitest.RequireCode(t, apitest.ListProjects(x.as(b, x.p.Sign(t, "k1", x.claims("ann@example.com", b.ID), nil))), connect.CodeUnauthenticated)

	// Promoted in Quarters, the same token may now invite.
	require.NoError(t, apitest.SetRole(x.AsUser(a.Owner), annID, quartersv1.Role_ROLE_ADMIN))
	_, err = ann.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "dave@example.com", Role: quartersv1.Role_ROLE_MEMBER}))
	require.NoError(t, err)

	// Removed, the same token fails on the next call.
	require.NoError(t, apitest.RemoveMember(x.AsUser(a.Owner), annID))
	apitest.RequireCode(t, apitest.ListProjects(ann), connect.CodeUnauthenticated)
}

// TestIDPTokenRefused: tokens the provider did not issue for a member, or
// that are not what the configuration asks for, are UNAUTHENTICATED.
func TestIDPTokenRefused(t *testing.T) {
	t.Parallel()
	x := newIDPServer(t)
	a := x.SignUp(t)
	x.Unthrottle(t, a.ID)
	email := a.OwnerEmail
	sign := func(c jwt.MapClaims, header map[string]any) string { return x.p.Sign(t, "k1", c, header) }
	require.NoError(t, apitest.ListProjects(x.as(a, sign(x.claims(email, a.Slug), nil))), "the baseline works")

	x.p.AddKey(t, "unpublished", idptest.RSA)
	pub, err := x509.MarshalPKIXPublicKey(x.p.Public("k1"))
	require.NoError(t, err)
	now := x.clock()
	for name, tok := range map[string]string{
		// Goes to Quarters' own verifier, which refuses it.
		"wrong iss":      sign(x.claims(email, a.Slug, "iss", "https://evil.example"), nil),
		"our iss":        sign(x.claims(email, a.Slug, "iss", "quarters"), nil),
		"wrong aud":      sign(x.claims(email, a.Slug, "aud", "quarters-api"), nil),
		"expired":        sign(x.claims(email, a.Slug, "exp", now.Add(-2*time.Minute).Unix()), nil),
		"not verified":   sign(x.claims(email, a.Slug, "email_verified", false), nil),
		"unknown email":  sign(x.claims("nobody@example.com", a.Slug), nil),
		"no email":       sign(x.claims(email, a.Slug, "email", nil), nil),
		"no tenant":      sign(x.claims(email, a.Slug, "tenant", nil), nil),
		"unknown tenant": sign(x.claims(email, "no-such-tenant"), nil),
		"embedded jwk": x.p.Sign(t, "unpublished", x.claims(email, a.Slug),
			map[string]any{"jwk": x.p.JWK("unpublished")}),
		"alg none": idptest.Forge(t, jwt.SigningMethodNone, map[string]any{"alg": "none", "kid": "k1"},
			x.claims(email, a.Slug), jwt.UnsafeAllowNoneSignatureType),
		"hs256 with the public key": idptest.Forge(t, jwt.SigningMethodHS256, map[string]any{"alg": "HS256", "kid": "k1", "typ": "JWT"},
			x.claims(email, a.Slug), pub),
	} {
		t.Run(name, func(t *testing.T) {
			apitest.RequireCode(t, apitest.ListProjects(x.as(a, tok)), connect.CodeUnauthenticated)
		})
	}

	// A key the JWKS does not publish: refused, after one refetch that
	// finds it still missing; a second try does not refetch.
	unknown := x.p.Sign(t, "unpublished", x.claims(email, a.Slug), nil)
	x.wait(idp.RefetchAfter)
	before := x.p.Fetches()
	apitest.RequireCode(t, apitest.ListProjects(x.as(a, unknown)), connect.CodeUnauthenticated)
	require.Equal(t, before+1, x.p.Fetches())
	apitest.RequireCode(t, apitest.ListProjects(x.as(a, unknown)), connect.CodeUnauthenticated)
	require.Equal(t, before+1, x.p.Fetches(), "refetching is rate-limited")
}

// TestIDPKeyRotation: when the provider publishes a new key, a token under
// it works once the rate limit allows the refetch its unknown kid asks for.
func TestIDPKeyRotation(t *testing.T) {
	t.Parallel()
	x := newIDPServer(t)
	a := x.SignUp(t)
	require.NoError(t, apitest.ListProjects(x.as(a, x.p.Sign(t, "k1", x.claims(a.OwnerEmail, a.Slug), nil))))

	x.p.AddKey(t, "k2", idptest.Ed25519)
	x.p.Publish("k1", "k2")
	x.wait(idp.RefetchAfter)
	before := x.p.Fetches()
	require.NoError(t, apitest.ListProjects(x.as(a, x.p.Sign(t, "k2", x.claims(a.OwnerEmail, a.Slug), nil))))
	require.Equal(t, before+1, x.p.Fetches())
	require.NoError(t, apitest.ListProjects(x.as(a, x.p.Sign(t, "k1", x.claims(a.OwnerEmail, a.Slug), nil))), "the old key still verifies while published")
}
