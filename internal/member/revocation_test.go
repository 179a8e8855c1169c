package member_test

import (
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/redistest"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// twoReplicas are two servers on one database, sharing Redis.
func twoReplicas(t *testing.T) (*servertest.Server, *servertest.Server) {
	t.Helper()
	rs := redistest.New(t)
	s1 := servertest.NewWith(t, &servertest.Opts{Redis: rs.Options()})
	return s1, servertest.NewWith(t, &servertest.Opts{Redis: rs.Options(), Share: s1})
}

// requireRefusedEverywhere: key (an API key or access token) is refused at
// once by s1, and by s2 as soon as the invalidation reaches it.
func requireRefusedEverywhere(t *testing.T, s1, s2 *servertest.Server, tn *servertest.Tenant, key, what string) {
	t.Helper()
	apitest.RequireCode(t, apitest.ListProjects(s1.As(tn.ID, tn.Slug, key)), connect.CodeUnauthenticated)
	require.Eventually(t, func() bool {
		return connect.CodeOf(apitest.ListProjects(s2.As(tn.ID, tn.Slug, key))) == connect.CodeUnauthenticated
	}, time.Second, 10*time.Millisecond, "replica 2 still accepts %s", what)
}

// TestApiKeysDieWithCreator: removing a member revokes the API keys they
// created, and the keys those keys created, on every replica; keys of the
// sign-up key and of other members stay.
func TestApiKeysDieWithCreator(t *testing.T) {
	t.Parallel()
	s1, s2 := twoReplicas(t)
	a := apitest.SignUpRoomy(t, s1)
	adminSess := apitest.Join(t, s1, a, "admin@example.com", quartersv1.Role_ROLE_ADMIN)
	_, byAdmin := apitest.CreateKey(t, s1.AsUser(adminSess), "admin's", quartersv1.Role_ROLE_ADMIN)
	_, byAdminsKey := apitest.CreateKey(t, s1.As(a.ID, a.Slug, byAdmin), "admin's key's", quartersv1.Role_ROLE_MEMBER)
	_, bySignUpKey := apitest.CreateKey(t, a, "sign-up key's", quartersv1.Role_ROLE_MEMBER)
	_, byOwner := apitest.CreateKey(t, s1.AsUser(a.Owner), "owner's", quartersv1.Role_ROLE_MEMBER)
	keys := []string{byAdmin, byAdminsKey, bySignUpKey, byOwner}
	for _, k := range keys {
		require.NoError(t, apitest.ListProjects(s2.As(a.ID, a.Slug, k)), "replica 2 caches the key")
	}
	list, err := a.Auth.ListApiKeys(ctx, req(&quartersv1.ListApiKeysRequest{}))
	require.NoError(t, err)
	creators := map[string]string{}
	for _, k := range list.Msg.GetApiKeys() {
		creators[k.GetName()] = k.GetCreatedBy()
	}
	require.Equal(t, map[string]string{
		"admin's":       adminSess.GetUser().GetId(),
		"admin's key's": adminSess.GetUser().GetId(),
		"sign-up key's": "",
		"owner's":       a.Owner.GetUser().GetId(),
		"sign-up key":   "",
	}, creators)

	require.NoError(t, apitest.RemoveMember(s1.AsUser(a.Owner), adminSess.GetUser().GetId()))
	requireRefusedEverywhere(t, s1, s2, a, byAdmin, "the removed admin's key")
	requireRefusedEverywhere(t, s1, s2, a, byAdminsKey, "the key the removed admin's key created")
	for _, k := range []string{bySignUpKey, byOwner, a.Key} {
		require.NoError(t, apitest.ListProjects(s1.As(a.ID, a.Slug, k)))
		require.NoError(t, apitest.ListProjects(s2.As(a.ID, a.Slug, k)))
	}
}

// TestRefreshReuseEndsAccessToken: presenting a refresh token that was
// already exchanged ends the session's live access token too, on every
// replica, not when it expires.
func TestRefreshReuseEndsAccessToken(t *testing.T) {
	t.Parallel()
	s1, s2 := twoReplicas(t)
	a := s1.SignUp(t)
	auth := apitest.Anon(s1, s1.URL).Auth
	first := apitest.MustSignIn(t, s1, a.OwnerEmail, servertest.OwnerPassword, a.Slug)
	resp, err := auth.RefreshToken(ctx, req(&quartersv1.RefreshTokenRequest{RefreshToken: first.GetRefreshToken()}))
	require.NoError(t, err)
	next := resp.Msg.GetSession()
	require.NoError(t, apitest.ListProjects(s2.AsUser(next)), "replica 2 caches the tenant")

	// A thief replays the first refresh token.
	_, err = auth.RefreshToken(ctx, req(&quartersv1.RefreshTokenRequest{RefreshToken: first.GetRefreshToken()}))
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)
	requireRefusedEverywhere(t, s1, s2, a, next.GetAccessToken(), "the reused session's access token")
	_, err = auth.RefreshToken(ctx, req(&quartersv1.RefreshTokenRequest{RefreshToken: next.GetRefreshToken()}))
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)

	// The member's other session refreshes and goes on.
	resp, err = auth.RefreshToken(ctx, req(&quartersv1.RefreshTokenRequest{RefreshToken: a.Owner.GetRefreshToken()}))
	require.NoError(t, err)
	require.NoError(t, apitest.ListProjects(s2.AsUser(resp.Msg.GetSession())))
}
