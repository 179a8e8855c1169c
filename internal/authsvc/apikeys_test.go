package authsvc_test

import (
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// TestApiKeys: create (role at most the caller's), list without secrets,
// revoke with effect on the very next call, last use recorded in batches.
func TestApiKeys(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t) // the sign-up key is admin

	mk, memberSecret := apitest.CreateKey(t, a, "ci", quartersv1.Role_ROLE_MEMBER)
	require.Regexp(t, `^qk_`, memberSecret)
	member := s.As(a.ID, a.Slug, memberSecret)
	_, err := member.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)

	// Nobody mints a credential stronger than their own; members manage no keys.
	_, err = a.Auth.CreateApiKey(ctx, req(&quartersv1.CreateApiKeyRequest{Name: "root", Role: quartersv1.Role_ROLE_OWNER}))
	cerr := apitest.RequireCode(t, err, connect.CodePermissionDenied)
	require.Contains(t, cerr.Message(), "role owner")
	_, err = member.Auth.CreateApiKey(ctx, req(&quartersv1.CreateApiKeyRequest{Name: "x", Role: quartersv1.Role_ROLE_MEMBER}))
	apitest.RequireCode(t, err, connect.CodePermissionDenied)
	_, err = member.Auth.ListApiKeys(ctx, req(&quartersv1.ListApiKeysRequest{}))
	apitest.RequireCode(t, err, connect.CodePermissionDenied)

	// The list has both keys, newest first, and no secret anywhere.
	list, err := a.Auth.ListApiKeys(ctx, req(&quartersv1.ListApiKeysRequest{}))
	require.NoError(t, err)
	require.Len(t, list.Msg.GetApiKeys(), 2)
	require.Equal(t, mk.GetId(), list.Msg.GetApiKeys()[0].GetId())
	require.Equal(t, "sign-up key", list.Msg.GetApiKeys()[1].GetName())
	require.NotContains(t, list.Msg.String(), memberSecret[len(mk.GetPrefix()):])

	// Last use is recorded without a write per call: visible after a flush.
	require.Nil(t, list.Msg.GetApiKeys()[0].GetLastUsedTime())
	require.NoError(t, s.KeyUse.Flush(ctx))
	list, err = a.Auth.ListApiKeys(ctx, req(&quartersv1.ListApiKeysRequest{}))
	require.NoError(t, err)
	used := list.Msg.GetApiKeys()[0].GetLastUsedTime()
	require.NotNil(t, used)
	require.WithinDuration(t, time.Now(), used.AsTime(), time.Minute)

	// Revocation holds from the next call; revoking twice keeps the time.
	rev, err := a.Auth.RevokeApiKey(ctx, req(&quartersv1.RevokeApiKeyRequest{Id: mk.GetId()}))
	require.NoError(t, err)
	require.NotNil(t, rev.Msg.GetApiKey().GetRevokeTime())
	_, err = member.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.Equal(t, "invalid API key", apitest.RequireCode(t, err, connect.CodeUnauthenticated).Message())
	again, err := a.Auth.RevokeApiKey(ctx, req(&quartersv1.RevokeApiKeyRequest{Id: mk.GetId()}))
	require.NoError(t, err)
	require.Equal(t, rev.Msg.GetApiKey().GetRevokeTime().AsTime(), again.Msg.GetApiKey().GetRevokeTime().AsTime())

	// Expiring keys: the time must be in the future, and is honoured.
	_, err = a.Auth.CreateApiKey(ctx, req(&quartersv1.CreateApiKeyRequest{
		Name: "past", Role: quartersv1.Role_ROLE_MEMBER, ExpireTime: timestamppb.New(time.Now().Add(-time.Hour)),
	}))
	require.Contains(t, apitest.Violations(t, apitest.RequireCode(t, err, connect.CodeInvalidArgument)), "expire_time")
	short, err := a.Auth.CreateApiKey(ctx, req(&quartersv1.CreateApiKeyRequest{
		Name: "short", Role: quartersv1.Role_ROLE_MEMBER, ExpireTime: timestamppb.New(time.Now().Add(time.Hour)),
	}))
	require.NoError(t, err)
	require.NotNil(t, short.Msg.GetApiKey().GetExpireTime())
	s.Exec(t, a.ID, "update api_keys set expire_time = now() - interval '1 second' where id = $1", short.Msg.GetApiKey().GetId())
	_, err = s.As(a.ID, a.Slug, short.Msg.GetSecret()).Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)
}

// TestApiKeysIsolation: tenant B cannot see, revoke or detect A's keys.
func TestApiKeysIsolation(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a, b := s.SignUp(t), s.SignUp(t)
	ak, aSecret := apitest.CreateKey(t, a, "a-only", quartersv1.Role_ROLE_MEMBER)

	_, err := b.Auth.RevokeApiKey(ctx, req(&quartersv1.RevokeApiKeyRequest{Id: ak.GetId()}))
	errA := apitest.RequireCode(t, err, connect.CodeNotFound)
	_, err = b.Auth.RevokeApiKey(ctx, req(&quartersv1.RevokeApiKeyRequest{Id: uuid.NewString()}))
	errMissing := apitest.RequireCode(t, err, connect.CodeNotFound)
	require.Equal(t, errMissing.Message(), errA.Message())

	list, err := b.Auth.ListApiKeys(ctx, req(&quartersv1.ListApiKeysRequest{}))
	require.NoError(t, err)
	require.Len(t, list.Msg.GetApiKeys(), 1, "B sees only its own sign-up key")
	require.NotEqual(t, ak.GetId(), list.Msg.GetApiKeys()[0].GetId())

	// A's key still works.
	_, err = s.As(a.ID, a.Slug, aSecret).Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
}
