package member_test

import (
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// invitations lists tn's pending invitations, newest first, one page of
// pageSize at a time until the last.
func invitations(t *testing.T, tn *servertest.Tenant, pageSize int32) []*quartersv1.Invitation {
	t.Helper()
	var out []*quartersv1.Invitation
	token := ""
	for {
		resp, err := tn.Members.ListInvitations(ctx, req(&quartersv1.ListInvitationsRequest{PageSize: pageSize, PageToken: token}))
		require.NoError(t, err)
		if pageSize > 0 {
			require.LessOrEqual(t, len(resp.Msg.GetInvitations()), int(pageSize))
		}
		out = append(out, resp.Msg.GetInvitations()...)
		if token = resp.Msg.GetNextPageToken(); token == "" {
			return out
		}
	}
}

func invitationEmails(invs []*quartersv1.Invitation) []string {
	out := make([]string, len(invs))
	for i, inv := range invs {
		out[i] = inv.GetEmail()
	}
	return out
}

func revokeInvitation(tn *servertest.Tenant, id string) (*quartersv1.Invitation, error) {
	resp, err := tn.Members.RevokeInvitation(ctx, req(&quartersv1.RevokeInvitationRequest{Id: id}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetInvitation(), nil
}

// TestInvitationList: ListInvitations shows exactly the pending
// invitations (not accepted, revoked or expired), newest first, with their
// fields, across pages; members cannot list them.
func TestInvitationList(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := apitest.SignUpRoomy(t, s)
	owner := s.AsUser(a.Owner)

	require.Empty(t, invitations(t, owner, 0), "the owner signed up with a password: nothing pending")

	byOwner, _ := apitest.InviteFull(t, owner, "Pat@Example.com", quartersv1.Role_ROLE_ADMIN)
	apitest.Join(t, s, a, "accepted@example.com", quartersv1.Role_ROLE_MEMBER)
	revoked, _ := apitest.InviteFull(t, owner, "revoked@example.com", quartersv1.Role_ROLE_MEMBER)
	_, err := revokeInvitation(owner, revoked.GetId())
	require.NoError(t, err)
	apitest.InviteFull(t, owner, "expired@example.com", quartersv1.Role_ROLE_MEMBER)
	s.Exec(t, a.ID, `update invitations set expire_time = now() - interval '1 second'
		where tenant_id = $1 and email = 'expired@example.com'`, a.ID)
	byKey, _ := apitest.InviteFull(t, a, "kim@example.com", quartersv1.Role_ROLE_MEMBER)
	latest, _ := apitest.InviteFull(t, owner, "lee@example.com", quartersv1.Role_ROLE_MEMBER)

	for _, size := range []int32{0, 1, 2} {
		got := invitations(t, owner, size)
		require.Equal(t, []string{"lee@example.com", "kim@example.com", "Pat@Example.com"}, invitationEmails(got), "page size %d", size)
		require.Equal(t, latest.GetId(), got[0].GetId())
	}

	got := invitations(t, a, 0) // admins by API key list too
	require.Len(t, got, 3)
	pat, kim := got[2], got[1]
	require.Equal(t, byOwner.GetId(), pat.GetId())
	require.Equal(t, quartersv1.Role_ROLE_ADMIN, pat.GetRole())
	require.Equal(t, a.Owner.GetUser().GetId(), pat.GetInvitedBy())
	require.True(t, byOwner.GetCreateTime().AsTime().Equal(pat.GetCreateTime().AsTime()))
	require.True(t, byOwner.GetExpireTime().AsTime().Equal(pat.GetExpireTime().AsTime()))
	require.WithinDuration(t, pat.GetCreateTime().AsTime().Add(7*24*time.Hour), pat.GetExpireTime().AsTime(), time.Minute)
	require.Nil(t, pat.GetRevokeTime())
	require.Equal(t, byKey.GetId(), kim.GetId())
	require.Equal(t, quartersv1.Role_ROLE_MEMBER, kim.GetRole())
	require.Empty(t, kim.GetInvitedBy(), "an API key invited")

	// A page token from elsewhere is refused, not misread.
	_, err = owner.Members.ListInvitations(ctx, req(&quartersv1.ListInvitationsRequest{PageToken: "garbage"}))
	apitest.RequireCode(t, err, connect.CodeInvalidArgument)
	// Members may list members but not invitations.
	member := s.AsUser(apitest.Join(t, s, a, "member@example.com", quartersv1.Role_ROLE_MEMBER))
	_, err = member.Members.ListInvitations(ctx, req(&quartersv1.ListInvitationsRequest{}))
	apitest.RequireCode(t, err, connect.CodePermissionDenied)
	_, err = revokeInvitation(member, latest.GetId())
	apitest.RequireCode(t, err, connect.CodePermissionDenied)
}

// TestInvitationRevoke: a revoked invitation's token fails as a used one
// does and its seat is free at once; an invitation can be revoked once,
// and neither an accepted nor an expired one can be.
func TestInvitationRevoke(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	s.Unthrottle(t, a.ID)
	apitest.SetMaxMembers(t, s, a.ID, 2)
	owner := s.AsUser(a.Owner)

	// The owner and one pending invitation fill both seats.
	pending, token := apitest.InviteFull(t, owner, "pending@example.com", quartersv1.Role_ROLE_MEMBER)
	_, err := a.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "next@example.com", Role: quartersv1.Role_ROLE_MEMBER}))
	apitest.RequireMemberQuota(t, err, 2)

	before := time.Now()
	revoked, err := revokeInvitation(a, pending.GetId())
	require.NoError(t, err)
	require.Equal(t, pending.GetId(), revoked.GetId())
	require.Equal(t, "pending@example.com", revoked.GetEmail())
	require.NotNil(t, revoked.GetRevokeTime())
	require.WithinDuration(t, before, revoked.GetRevokeTime().AsTime(), time.Minute)
	require.Equal(t, 1, apitest.OwnerCount(t, s, `select count(*) from invitations
		where tenant_id = $1 and id = $2 and revoke_time is not null and accept_time is null`, a.ID, pending.GetId()))

	// The token is dead, with the answer a used one gets.
	_, err = apitest.AcceptInvitation(s, token, apitest.MemberPassword)
	require.Equal(t, apitest.UsedInvitation, apitest.RequireCode(t, err, connect.CodeNotFound).Message())
	require.NotContains(t, apitest.Members(t, owner), "pending@example.com")
	require.Empty(t, invitations(t, owner, 0))

	// Its seat is free.
	next, nextToken := apitest.InviteFull(t, a, "next@example.com", quartersv1.Role_ROLE_MEMBER)

	// Once only: a revoked, an accepted or an expired invitation cannot be
	// revoked, and saying so changes nothing.
	_, err = revokeInvitation(a, pending.GetId())
	require.Contains(t, apitest.RequireCode(t, err, connect.CodeFailedPrecondition).Message(), "already revoked")
	_, err = apitest.AcceptInvitation(s, nextToken, apitest.MemberPassword)
	require.NoError(t, err)
	_, err = revokeInvitation(owner, next.GetId())
	require.Contains(t, apitest.RequireCode(t, err, connect.CodeFailedPrecondition).Message(), "already accepted")
	require.Contains(t, apitest.Members(t, owner), "next@example.com")

	apitest.SetMaxMembers(t, s, a.ID, 3)
	late, lateToken := apitest.InviteFull(t, owner, "late@example.com", quartersv1.Role_ROLE_MEMBER)
	s.Exec(t, a.ID, `update invitations set expire_time = now() - interval '1 second' where tenant_id = $1 and id = $2`, a.ID, late.GetId())
	_, err = revokeInvitation(owner, late.GetId())
	require.Contains(t, apitest.RequireCode(t, err, connect.CodeFailedPrecondition).Message(), "expired")
	_, err = apitest.AcceptInvitation(s, lateToken, apitest.MemberPassword)
	require.Equal(t, apitest.UsedInvitation, apitest.RequireCode(t, err, connect.CodeNotFound).Message())
}

// TestInvitationRevokeOwner: only owners revoke an owner invitation, as
// only owners make one; admins revoke the others.
func TestInvitationRevokeOwner(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := apitest.SignUpRoomy(t, s)
	owner := s.AsUser(a.Owner)
	admin := s.AsUser(apitest.Join(t, s, a, "admin@example.com", quartersv1.Role_ROLE_ADMIN))

	boss, bossToken := apitest.InviteFull(t, owner, "boss@example.com", quartersv1.Role_ROLE_OWNER)
	for name, tn := range map[string]*servertest.Tenant{"admin user": admin, "admin key": a} {
		_, err := revokeInvitation(tn, boss.GetId())
		require.Contains(t, apitest.RequireCode(t, err, connect.CodePermissionDenied).Message(), "only owners", name)
	}
	require.Equal(t, []string{"boss@example.com"}, invitationEmails(invitations(t, admin, 0)), "refusals change nothing")

	helper, _ := apitest.InviteFull(t, owner, "helper@example.com", quartersv1.Role_ROLE_ADMIN)
	_, err := revokeInvitation(admin, helper.GetId())
	require.NoError(t, err, "admins revoke admin invitations, even an owner's")

	_, err = revokeInvitation(owner, boss.GetId())
	require.NoError(t, err)
	_, err = apitest.AcceptInvitation(s, bossToken, apitest.MemberPassword)
	require.Equal(t, apitest.UsedInvitation, apitest.RequireCode(t, err, connect.CodeNotFound).Message())
	require.Equal(t, map[string]quartersv1.Role{
		a.OwnerEmail:        quartersv1.Role_ROLE_OWNER,
		"admin@example.com": quartersv1.Role_ROLE_ADMIN,
	}, apitest.Members(t, owner))
}

// TestInvitationIsolation: another tenant sees only its own invitations,
// and revoking this tenant's looks like revoking one that does not exist
// and leaves it usable.
func TestInvitationIsolation(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := apitest.SignUpRoomy(t, s)
	b := apitest.SignUpRoomy(t, s)
	aInv, aToken := apitest.InviteFull(t, s.AsUser(a.Owner), "amy@example.com", quartersv1.Role_ROLE_MEMBER)
	apitest.InviteFull(t, b, "bob@example.com", quartersv1.Role_ROLE_MEMBER)
	bOwner := s.AsUser(b.Owner)

	for name, tn := range map[string]*servertest.Tenant{"b owner": bOwner, "b key": b} {
		require.Equal(t, []string{"bob@example.com"}, invitationEmails(invitations(t, tn, 0)), name)

		_, err := revokeInvitation(tn, aInv.GetId())
		errA := apitest.RequireCode(t, err, connect.CodeNotFound)
		_, err = revokeInvitation(tn, uuid.NewString())
		errMissing := apitest.RequireCode(t, err, connect.CodeNotFound)
		require.Equal(t, "invitation not found", errMissing.Message(), name)
		require.Equal(t, errMissing.Message(), errA.Message(), name)
		require.Equal(t, len(errMissing.Details()), len(errA.Details()), name)
	}

	require.Equal(t, []string{"amy@example.com"}, invitationEmails(invitations(t, a, 0)))
	sess, err := apitest.AcceptInvitation(s, aToken, apitest.MemberPassword)
	require.NoError(t, err, "a's invitation is still usable")
	require.Equal(t, a.ID, sess.GetTenantId())
}
