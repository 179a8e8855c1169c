package authsvc_test

import (
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/notify"
	"github.com/quarters-dev/quarters/internal/servertest"
	"github.com/quarters-dev/quarters/internal/tenant"
)

// TestSignIn: the tenant comes from the tenant field, X-Tenant-ID or the
// subdomain; every failure reads the same; the session's token works.
func TestSignIn(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a, b := s.SignUp(t), s.SignUp(t)

	require.Equal(t, quartersv1.Role_ROLE_OWNER, a.Owner.GetRole())
	require.Equal(t, a.ID, a.Owner.GetTenantId())
	require.Equal(t, a.OwnerEmail, a.Owner.GetUser().GetEmail())
	require.True(t, a.Owner.GetUser().GetHasPassword())

	sessions := map[string]*quartersv1.Session{
		"field (slug)": apitest.MustSignIn(t, s, a.OwnerEmail, servertest.OwnerPassword, a.Slug),
		"field (id)":   apitest.MustSignIn(t, s, a.OwnerEmail, servertest.OwnerPassword, a.ID),
	}
	resp, err := apitest.Anon(s, s.URL, connect.WithInterceptors(servertest.Header(tenant.HeaderName, a.Slug))).Auth.SignIn(ctx,
		req(&quartersv1.SignInRequest{Email: a.OwnerEmail, Password: servertest.OwnerPassword}))
	require.NoError(t, err)
	sessions["header"] = resp.Msg.GetSession()
	resp, err = apitest.Anon(s, s.SubdomainURL(a.Slug)).Auth.SignIn(ctx,
		req(&quartersv1.SignInRequest{Email: a.OwnerEmail, Password: servertest.OwnerPassword}))
	require.NoError(t, err)
	sessions["subdomain"] = resp.Msg.GetSession()

	for name, sess := range sessions {
		require.Equal(t, a.ID, sess.GetTenantId(), name)
		require.Equal(t, a.Slug, sess.GetTenantSlug(), name)
		require.Equal(t, quartersv1.Role_ROLE_OWNER, sess.GetRole(), name)
		require.Regexp(t, `^qr_`, sess.GetRefreshToken(), name)
		ttl := sess.GetAccessTokenExpireTime().AsTime().Sub(time.Now())
		require.True(t, ttl > 14*time.Minute && ttl <= 15*time.Minute, "%s: access token ttl %v", name, ttl)
		got, err := s.AsUser(sess).Tenants.GetTenant(ctx, req(&quartersv1.GetTenantRequest{}))
		require.NoError(t, err, name)
		require.Equal(t, a.Slug, got.Msg.GetTenant().GetSlug(), name)
	}

	// Unknown email, wrong password, a tenant the user is not a member of
	// and an unknown tenant are one answer.
	var msgs []string
	for _, in := range []*quartersv1.SignInRequest{
		{Email: "nobody@" + a.Slug + ".example", Password: servertest.OwnerPassword, Tenant: a.Slug},
		{Email: a.OwnerEmail, Password: servertest.OwnerPassword + "x", Tenant: a.Slug},
		{Email: b.OwnerEmail, Password: servertest.OwnerPassword, Tenant: a.Slug},
		{Email: a.OwnerEmail, Password: servertest.OwnerPassword, Tenant: "no-such-tenant"},
	} {
		_, err := apitest.Anon(s, s.URL).Auth.SignIn(ctx, req(in))
		msgs = append(msgs, apitest.RequireCode(t, err, connect.CodeUnauthenticated).Message())
	}
	require.Equal(t, []string{msgs[0], msgs[0], msgs[0], msgs[0]}, msgs)
	require.Contains(t, msgs[0], "email or password is wrong")

	_, err = apitest.Anon(s, s.URL).Auth.SignIn(ctx, req(&quartersv1.SignInRequest{Email: a.OwnerEmail, Password: servertest.OwnerPassword}))
	require.Contains(t, apitest.RequireCode(t, err, connect.CodeInvalidArgument).Message(), "choose the tenant")

	// Email matching ignores case.
	require.Equal(t, a.ID, apitest.MustSignIn(t, s, "OWNER@"+a.Slug+".EXAMPLE", servertest.OwnerPassword, a.Slug).GetTenantId())

	// A suspended tenant refuses sign-in with its reason.
	s.Exec(t, b.ID, "update tenants set status = 'suspended' where id = $1", b.ID)
	_, err = apitest.Anon(s, s.URL).Auth.SignIn(ctx, req(&quartersv1.SignInRequest{Email: b.OwnerEmail, Password: servertest.OwnerPassword, Tenant: b.Slug}))
	require.Equal(t, "TENANT_SUSPENDED", apitest.ErrorInfo(t, apitest.RequireCode(t, err, connect.CodePermissionDenied)).GetReason())
}

// TestRefreshRotation: each refresh token works once; reusing one ends the
// whole session, including the tokens rotated from it.
func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	auth := apitest.Anon(s, s.URL).Auth
	refresh := func(rt string) (*quartersv1.Session, error) {
		resp, err := auth.RefreshToken(ctx, req(&quartersv1.RefreshTokenRequest{RefreshToken: rt}))
		if err != nil {
			return nil, err
		}
		return resp.Msg.GetSession(), nil
	}

	first := apitest.MustSignIn(t, s, a.OwnerEmail, servertest.OwnerPassword, a.Slug)
	second, err := refresh(first.GetRefreshToken())
	require.NoError(t, err)
	require.NotEqual(t, first.GetRefreshToken(), second.GetRefreshToken())
	require.NotEqual(t, first.GetAccessToken(), second.GetAccessToken())
	require.Equal(t, a.ID, second.GetTenantId())
	require.Equal(t, quartersv1.Role_ROLE_OWNER, second.GetRole())
	_, err = s.AsUser(second).Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
	third, err := refresh(second.GetRefreshToken())
	require.NoError(t, err)

	// Replaying the first token (a thief's copy, say) ends the session...
	_, err = refresh(first.GetRefreshToken())
	require.Contains(t, apitest.RequireCode(t, err, connect.CodeUnauthenticated).Message(), "already used")
	// ...so the live token of that family is refused too,
	_, err = refresh(third.GetRefreshToken())
	require.Contains(t, apitest.RequireCode(t, err, connect.CodeUnauthenticated).Message(), "sign in again")
	// while other sessions of the same user are untouched.
	_, err = refresh(a.Owner.GetRefreshToken())
	require.NoError(t, err)

	for _, bad := range []string{"", "qr_nope", "qk_" + first.GetRefreshToken()[3:], a.Key} {
		_, err = refresh(bad)
		require.Contains(t, []connect.Code{connect.CodeUnauthenticated, connect.CodeInvalidArgument}, connect.CodeOf(err), "%q", bad)
	}
}

// TestSignOut ends one session; everywhere ends them all, and access
// tokens already issued fail on their next call.
func TestSignOut(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	auth := apitest.Anon(s, s.URL).Auth
	one := apitest.MustSignIn(t, s, a.OwnerEmail, servertest.OwnerPassword, a.Slug)
	two := apitest.MustSignIn(t, s, a.OwnerEmail, servertest.OwnerPassword, a.Slug)

	_, err := auth.SignOut(ctx, req(&quartersv1.SignOutRequest{RefreshToken: one.GetRefreshToken()}))
	require.NoError(t, err)
	_, err = auth.RefreshToken(ctx, req(&quartersv1.RefreshTokenRequest{RefreshToken: one.GetRefreshToken()}))
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)
	// Signing out again, or with a token that never existed, succeeds.
	_, err = auth.SignOut(ctx, req(&quartersv1.SignOutRequest{RefreshToken: one.GetRefreshToken()}))
	require.NoError(t, err)
	_, err = auth.SignOut(ctx, req(&quartersv1.SignOutRequest{RefreshToken: "qr_nope"}))
	require.NoError(t, err)
	_, err = auth.SignOut(ctx, req(&quartersv1.SignOutRequest{}))
	require.Contains(t, apitest.Violations(t, apitest.RequireCode(t, err, connect.CodeInvalidArgument)), "sign_out.target")

	// everywhere needs the user's access token, not an API key.
	_, err = auth.SignOut(ctx, req(&quartersv1.SignOutRequest{Everywhere: true}))
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)
	_, err = a.Auth.SignOut(ctx, req(&quartersv1.SignOutRequest{Everywhere: true}))
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)

	user := s.AsUser(two)
	_, err = user.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
	_, err = user.Auth.SignOut(ctx, req(&quartersv1.SignOutRequest{Everywhere: true}))
	require.NoError(t, err)
	for name, sess := range map[string]*quartersv1.Session{"two": two, "sign-up": a.Owner} {
		_, err = s.AsUser(sess).Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
		apitest.RequireCode(t, err, connect.CodeUnauthenticated)
		_, err = auth.RefreshToken(ctx, req(&quartersv1.RefreshTokenRequest{RefreshToken: sess.GetRefreshToken()}))
		apitest.RequireCode(t, err, connect.CodeUnauthenticated)
		_ = name
	}
	// The API key is no session: it still works. A new sign-in works too.
	_, err = a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
	_, err = s.AsUser(apitest.MustSignIn(t, s, a.OwnerEmail, servertest.OwnerPassword, a.Slug)).Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
}

// TestUserInTwoTenants: one person owns two tenants (signing up the second
// with the same email and password), sees each tenant's data only with that
// tenant's token, and switches between them.
func TestUserInTwoTenants(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	slugB := a.Slug + "-b"
	resp, err := s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{
		Slug: slugB, Name: "B", OwnerEmail: a.OwnerEmail, OwnerPassword: "ignored: the account has one",
	}))
	require.NoError(t, err)
	require.Nil(t, resp.Msg.GetSession())
	// The account's owner is told, and signs in with their own password.
	notice, token := s.Mailbox.Wait(t, a.OwnerEmail, notify.SubjectOwner)
	require.Contains(t, notice.Text, slugB)
	require.Empty(t, token, "a verified account with a password gets no link")
	inB := apitest.MustSignIn(t, s, a.OwnerEmail, servertest.OwnerPassword, slugB)
	require.Equal(t, a.Owner.GetUser().GetId(), inB.GetUser().GetId(), "the same user")
	require.Equal(t, slugB, inB.GetTenantSlug())

	pa := apitest.CreateProject(t, s.AsUser(a.Owner), "only in a")
	pb := apitest.CreateProject(t, s.AsUser(inB), "only in b")
	list := func(sess *quartersv1.Session) []string {
		resp, err := s.AsUser(sess).Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
		require.NoError(t, err)
		var ids []string
		for _, p := range resp.Msg.GetProjects() {
			ids = append(ids, p.GetId())
		}
		return ids
	}
	require.Equal(t, []string{pa.GetId()}, list(a.Owner))
	require.Equal(t, []string{pb.GetId()}, list(inB))
	_, err = s.AsUser(inB).Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: pa.GetId()}))
	apitest.RequireCode(t, err, connect.CodeNotFound)

	// A's token on B's subdomain, or naming B, is a mismatch.
	_, err = s.AsAt(s.SubdomainURL(slugB), a.ID, a.Slug, a.Owner.GetAccessToken()).Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.Equal(t, "TENANT_MISMATCH", apitest.ErrorInfo(t, apitest.RequireCode(t, err, connect.CodePermissionDenied)).GetReason())
	_, err = s.AsUser(a.Owner, connect.WithInterceptors(servertest.Header(tenant.HeaderName, slugB))).Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.Equal(t, "TENANT_MISMATCH", apitest.ErrorInfo(t, apitest.RequireCode(t, err, connect.CodePermissionDenied)).GetReason())

	// SwitchTenant from A to B, by slug or id.
	sw, err := s.AsUser(a.Owner).Auth.SwitchTenant(ctx, req(&quartersv1.SwitchTenantRequest{Tenant: slugB}))
	require.NoError(t, err)
	require.Equal(t, inB.GetTenantId(), sw.Msg.GetSession().GetTenantId())
	require.Equal(t, []string{pb.GetId()}, list(sw.Msg.GetSession()))
	sw, err = s.AsUser(inB).Auth.SwitchTenant(ctx, req(&quartersv1.SwitchTenantRequest{Tenant: a.ID}))
	require.NoError(t, err)
	require.Equal(t, []string{pa.GetId()}, list(sw.Msg.GetSession()))

	// Not a member, or no such tenant: the same NOT_FOUND.
	c := s.SignUp(t)
	_, err = s.AsUser(a.Owner).Auth.SwitchTenant(ctx, req(&quartersv1.SwitchTenantRequest{Tenant: c.Slug}))
	notMember := apitest.RequireCode(t, err, connect.CodeNotFound).Message()
	_, err = s.AsUser(a.Owner).Auth.SwitchTenant(ctx, req(&quartersv1.SwitchTenantRequest{Tenant: "no-such-tenant"}))
	require.Equal(t, notMember, apitest.RequireCode(t, err, connect.CodeNotFound).Message())
	// API keys cannot switch: they belong to one tenant.
	_, err = a.Auth.SwitchTenant(ctx, req(&quartersv1.SwitchTenantRequest{Tenant: slugB}))
	apitest.RequireCode(t, err, connect.CodePermissionDenied)

	// A sign-up neither checks nor sets an existing account's password:
	// another password is ignored, and the account keeps its own.
	_, err = s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{
		Slug: a.Slug + "-c", Name: "C", OwnerEmail: a.OwnerEmail, OwnerPassword: "not the password",
	}))
	require.NoError(t, err)
	_, err = apitest.SignIn(s, a.OwnerEmail, "not the password", a.Slug+"-c")
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)
	apitest.MustSignIn(t, s, a.OwnerEmail, servertest.OwnerPassword, a.Slug+"-c")
}

// TestAccessTokenClaims: the token names the user, tenant and role.
func TestAccessTokenClaims(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	claims := jwt.MapClaims{}
	_, _, err := jwt.NewParser().ParseUnverified(a.Owner.GetAccessToken(), claims)
	require.NoError(t, err)
	require.Equal(t, a.Owner.GetUser().GetId(), claims["sub"])
	require.Equal(t, a.ID, claims["tid"])
	require.Equal(t, "owner", claims["role"])
	for _, c := range []string{"iss", "aud", "exp", "iat", "nbf", "jti"} {
		require.Contains(t, claims, c)
	}
}
