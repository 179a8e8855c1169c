package member_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/notify"
	"github.com/quarters-dev/quarters/internal/redistest"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// TestInvitationAccept: a new person accepts an invitation, setting a
// password, and is a member with the invited role; the token works once,
// not after it expires, and a refused password leaves it usable.
func TestInvitationAccept(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := apitest.SignUpRoomy(t, s)
	owner := s.AsUser(a.Owner)

	before := time.Now()
	resp, err := owner.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "Ann@Example.com", Role: quartersv1.Role_ROLE_MEMBER}))
	require.NoError(t, err)
	require.Empty(t, resp.Msg.GetToken(), "the inviter never holds the token")
	inv := resp.Msg.GetInvitation()
	msg, token := s.Mailbox.Wait(t, "ann@example.com", notify.SubjectInvitation)
	require.Equal(t, "Ann@Example.com", msg.To, "sent as invited")
	require.True(t, len(token) > 3 && token[:3] == "qi_", "invitation tokens carry their prefix: %q", token)
	require.Contains(t, msg.Text, servertest.LinkURL+"/accept-invitation?token="+token)
	require.Contains(t, msg.Text, a.OwnerEmail+" invited you")
	require.Contains(t, msg.Text, "as member")
	require.WithinDuration(t, before.Add(7*24*time.Hour), inv.GetExpireTime().AsTime(), time.Minute)
	require.Equal(t, "Ann@Example.com", inv.GetEmail())

	// Too short: INVALID_ARGUMENT naming password, and nothing is used up.
	_, err = apitest.AcceptInvitation(s, token, "short")
	cerr := apitest.RequireCode(t, err, connect.CodeInvalidArgument)
	require.Equal(t, []string{"password"}, apitest.Violations(t, cerr))
	require.Contains(t, cerr.Message(), "at least 10 characters")

	sess, err := apitest.AcceptInvitation(s, token, apitest.MemberPassword)
	require.NoError(t, err)
	require.Equal(t, quartersv1.Role_ROLE_MEMBER, sess.GetRole())
	require.Equal(t, a.ID, sess.GetTenantId())
	require.Equal(t, a.Slug, sess.GetTenantSlug())
	require.Equal(t, "Ann@Example.com", sess.GetUser().GetEmail())
	require.True(t, sess.GetUser().GetHasPassword())
	require.NotEmpty(t, sess.GetRefreshToken())

	ann := s.AsUser(sess)
	require.NoError(t, apitest.ListProjects(ann), "the new member's session works")
	// Members may list members; they see both, with their roles.
	require.Equal(t, map[string]quartersv1.Role{
		a.OwnerEmail:      quartersv1.Role_ROLE_OWNER,
		"Ann@Example.com": quartersv1.Role_ROLE_MEMBER,
	}, apitest.Members(t, ann))
	// The password set at acceptance signs in (any case of the email).
	_, err = apitest.SignIn(s, "ann@example.com", apitest.MemberPassword, a.Slug)
	require.NoError(t, err)

	// A token works once; the same answer as for a made-up or garbled one.
	_, err = apitest.AcceptInvitation(s, token, apitest.MemberPassword)
	used := apitest.RequireCode(t, err, connect.CodeNotFound)
	require.Equal(t, "invitation is invalid, expired or already used; ask for a new one", used.Message())
	madeUp, _, _ := auth.InvitationToken.New()
	for _, bad := range []string{madeUp, "qi_garbled", apitest.Mangle(token)} {
		_, err = apitest.AcceptInvitation(s, bad, apitest.MemberPassword)
		require.Equal(t, used.Message(), apitest.RequireCode(t, err, connect.CodeNotFound).Message(), bad)
	}

	// An expired invitation is refused the same way.
	late := apitest.Invite(t, owner, "late@example.com", quartersv1.Role_ROLE_ADMIN)
	s.Exec(t, a.ID, `update invitations set expire_time = now() - interval '1 minute'
		where tenant_id = $1 and email = 'late@example.com'`, a.ID)
	_, err = apitest.AcceptInvitation(s, late, apitest.MemberPassword)
	require.Equal(t, used.Message(), apitest.RequireCode(t, err, connect.CodeNotFound).Message())
	require.NotContains(t, apitest.Members(t, owner), "late@example.com")

	// Pages: one member per page, newest first.
	p1, err := owner.Members.ListMembers(ctx, req(&quartersv1.ListMembersRequest{PageSize: 1}))
	require.NoError(t, err)
	require.Len(t, p1.Msg.GetMembers(), 1)
	require.Equal(t, "Ann@Example.com", p1.Msg.GetMembers()[0].GetUser().GetEmail())
	require.Equal(t, sess.GetUser().GetId(), p1.Msg.GetMembers()[0].GetUser().GetId())
	require.True(t, proto.Equal(&quartersv1.User{Id: sess.GetUser().GetId(), Email: "Ann@Example.com"}, p1.Msg.GetMembers()[0].GetUser()),
		"a tenant sees the id and email of a member's account, nothing else about it: %v", p1.Msg.GetMembers()[0].GetUser())
	p2, err := owner.Members.ListMembers(ctx, req(&quartersv1.ListMembersRequest{PageSize: 1, PageToken: p1.Msg.GetNextPageToken()}))
	require.NoError(t, err)
	require.Len(t, p2.Msg.GetMembers(), 1)
	require.Equal(t, a.OwnerEmail, p2.Msg.GetMembers()[0].GetUser().GetEmail())
	require.Empty(t, p2.Msg.GetNextPageToken(), "the last page")
}

// TestInvitationExistingUser: inviting a person who already has an account
// (another tenant's owner) makes them prove their password; a wrong one is
// UNAUTHENTICATED and leaves the invitation usable. The person is then a
// member of both tenants, and GetCurrentUser lists both.
func TestInvitationExistingUser(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := apitest.SignUpRoomy(t, s)
	b := apitest.SignUpRoomy(t, s)

	token := apitest.Invite(t, s.AsUser(a.Owner), b.OwnerEmail, quartersv1.Role_ROLE_ADMIN)
	_, err := apitest.AcceptInvitation(s, token, "not the password at all")
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)
	// Length rules are for new passwords only: a short wrong one is still
	// just wrong.
	_, err = apitest.AcceptInvitation(s, token, "short")
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)
	require.NotContains(t, apitest.Members(t, a), b.OwnerEmail)

	sess, err := apitest.AcceptInvitation(s, token, servertest.OwnerPassword)
	require.NoError(t, err)
	require.Equal(t, quartersv1.Role_ROLE_ADMIN, sess.GetRole())
	require.Equal(t, a.ID, sess.GetTenantId())
	require.Equal(t, b.Owner.GetUser().GetId(), sess.GetUser().GetId(), "one person, one user")

	me, err := s.AsUser(sess).Members.GetCurrentUser(ctx, req(&quartersv1.GetCurrentUserRequest{}))
	require.NoError(t, err)
	require.Equal(t, b.OwnerEmail, me.Msg.GetUser().GetEmail())
	require.Equal(t, a.ID, me.Msg.GetTenantId())
	require.Equal(t, quartersv1.Role_ROLE_ADMIN, me.Msg.GetRole())
	got := map[string]quartersv1.Role{}
	for _, tm := range me.Msg.GetTenants() {
		got[tm.GetTenantId()] = tm.GetRole()
		require.NotEmpty(t, tm.GetTenantSlug())
		require.NotEmpty(t, tm.GetTenantName())
	}
	require.Equal(t, map[string]quartersv1.Role{a.ID: quartersv1.Role_ROLE_ADMIN, b.ID: quartersv1.Role_ROLE_OWNER}, got)
	// The password was not changed by any of this.
	_, err = apitest.SignIn(s, b.OwnerEmail, servertest.OwnerPassword, b.Slug)
	require.NoError(t, err)

	// Inviting a member again is ALREADY_EXISTS, whatever the case.
	_, err = a.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: strings.ToUpper(b.OwnerEmail), Role: quartersv1.Role_ROLE_MEMBER}))
	apitest.RequireCode(t, err, connect.CodeAlreadyExists)
}

// TestInvitationOwnerSetPassword: a sign-up without owner_password mails
// the owner a set-password link (the response holds no token and no
// session); ResetPassword with it sets the password and verifies the
// email, and the owner signs in, keeping the owner membership as it was.
func TestInvitationOwnerSetPassword(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	email := "solo-owner@example.com"
	resp, err := s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{Slug: "solo", Name: "Solo", OwnerEmail: email}))
	require.NoError(t, err)
	require.Empty(t, resp.Msg.GetOwnerInvitationToken())
	require.Nil(t, resp.Msg.GetSession())
	msg, token := s.Mailbox.Wait(t, email, notify.SubjectSetPassword)
	require.Regexp(t, `^qp_`, token)
	require.Contains(t, msg.Text, servertest.LinkURL+"/reset-password?token="+token)
	require.Contains(t, msg.Text, `"Solo" (solo)`)
	require.Equal(t, 1, apitest.OwnerCount(t, s, `select count(*) from email_tokens where purpose = 'set_password'
		and expire_time between create_time + interval '1439 minutes' and create_time + interval '1441 minutes'`), "a sign-up's set-password link lives a day")
	_, err = apitest.SignIn(s, email, apitest.MemberPassword, "solo")
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)

	auth := s.As("", "", "").Auth
	_, err = auth.ResetPassword(ctx, req(&quartersv1.ResetPasswordRequest{Token: token, NewPassword: "short"}))
	require.Equal(t, []string{"new_password"}, apitest.Violations(t, apitest.RequireCode(t, err, connect.CodeInvalidArgument)))
	_, err = auth.ResetPassword(ctx, req(&quartersv1.ResetPasswordRequest{Token: token, NewPassword: apitest.MemberPassword}))
	require.NoError(t, err)
	sess, err := apitest.SignIn(s, email, apitest.MemberPassword, "solo")
	require.NoError(t, err)
	require.Equal(t, quartersv1.Role_ROLE_OWNER, sess.GetRole())
	require.True(t, sess.GetUser().GetEmailVerified())
	owner := s.AsUser(sess)
	require.Equal(t, map[string]quartersv1.Role{email: quartersv1.Role_ROLE_OWNER}, apitest.Members(t, owner))
	_, err = auth.ResetPassword(ctx, req(&quartersv1.ResetPasswordRequest{Token: token, NewPassword: "another password"}))
	apitest.RequireCode(t, err, connect.CodeNotFound)
}

// TestMemberRules: only owners make, unmake, invite or remove owners;
// members manage nobody; nobody raises their own role; a tenant keeps at
// least one owner; a second owner can demote the first.
func TestMemberRules(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := apitest.SignUpRoomy(t, s)
	owner := s.AsUser(a.Owner)
	ownerID := a.Owner.GetUser().GetId()
	adminSess := apitest.Join(t, s, a, "admin@example.com", quartersv1.Role_ROLE_ADMIN)
	admin := s.AsUser(adminSess)
	memberSess := apitest.Join(t, s, a, "member@example.com", quartersv1.Role_ROLE_MEMBER)
	member := s.AsUser(memberSess)
	memberID := memberSess.GetUser().GetId()

	// Admins, by token or API key, cannot hand out or take away ownership.
	for name, tn := range map[string]*servertest.Tenant{"admin user": admin, "admin key": a} {
		_, err := tn.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "boss@example.com", Role: quartersv1.Role_ROLE_OWNER}))
		require.Contains(t, apitest.RequireCode(t, err, connect.CodePermissionDenied).Message(), "only owners", name)
		require.Contains(t, apitest.RequireCode(t, apitest.SetRole(tn, memberID, quartersv1.Role_ROLE_OWNER), connect.CodePermissionDenied).Message(), "only owners", name)
		apitest.RequireCode(t, apitest.SetRole(tn, ownerID, quartersv1.Role_ROLE_ADMIN), connect.CodePermissionDenied)
		apitest.RequireCode(t, apitest.RemoveMember(tn, ownerID), connect.CodePermissionDenied)
	}
	// Nobody raises their own role.
	apitest.RequireCode(t, apitest.SetRole(admin, adminSess.GetUser().GetId(), quartersv1.Role_ROLE_OWNER), connect.CodePermissionDenied)
	// Members manage nobody: the access rule refuses them.
	_, err := member.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "friend@example.com", Role: quartersv1.Role_ROLE_MEMBER}))
	require.Contains(t, apitest.RequireCode(t, err, connect.CodePermissionDenied).Message(), "requires role admin")
	apitest.RequireCode(t, apitest.SetRole(member, memberID, quartersv1.Role_ROLE_ADMIN), connect.CodePermissionDenied)
	apitest.RequireCode(t, apitest.RemoveMember(member, adminSess.GetUser().GetId()), connect.CodePermissionDenied)
	// Admins manage members and admins.
	require.NoError(t, apitest.SetRole(admin, memberID, quartersv1.Role_ROLE_MEMBER), "setting the same role is a no-op")
	require.NoError(t, apitest.ListProjects(member), "a no-op change ends no session")
	apitest.Invite(t, admin, "helper@example.com", quartersv1.Role_ROLE_ADMIN)

	// The last owner can be neither demoted nor removed, even by itself.
	cerr := apitest.RequireCode(t, apitest.SetRole(owner, ownerID, quartersv1.Role_ROLE_ADMIN), connect.CodeFailedPrecondition)
	require.Contains(t, cerr.Message(), "last owner")
	apitest.RequireCode(t, apitest.RemoveMember(owner, ownerID), connect.CodeFailedPrecondition)

	// With two owners, one can demote the other, and then the last one
	// stays.
	require.NoError(t, apitest.SetRole(owner, adminSess.GetUser().GetId(), quartersv1.Role_ROLE_OWNER))
	second, err := apitest.SignIn(s, "admin@example.com", apitest.MemberPassword, a.Slug)
	require.NoError(t, err)
	require.Equal(t, quartersv1.Role_ROLE_OWNER, second.GetRole())
	owner2 := s.AsUser(second)
	require.NoError(t, apitest.SetRole(owner2, ownerID, quartersv1.Role_ROLE_MEMBER))
	apitest.RequireCode(t, apitest.SetRole(owner2, second.GetUser().GetId(), quartersv1.Role_ROLE_ADMIN), connect.CodeFailedPrecondition)
	require.Equal(t, map[string]quartersv1.Role{
		a.OwnerEmail:         quartersv1.Role_ROLE_MEMBER,
		"admin@example.com":  quartersv1.Role_ROLE_OWNER,
		"member@example.com": quartersv1.Role_ROLE_MEMBER,
	}, apitest.Members(t, owner2))
}

// TestMemberLastOwnerRace: two owners demoting each other at once cannot
// both succeed: the tenant keeps an owner.
func TestMemberLastOwnerRace(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := apitest.SignUpRoomy(t, s)
	otherSess := apitest.Join(t, s, a, "co-owner@example.com", quartersv1.Role_ROLE_OWNER)
	owners := []*servertest.Tenant{s.AsUser(a.Owner), s.AsUser(otherSess)}
	targets := []string{otherSess.GetUser().GetId(), a.Owner.GetUser().GetId()}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = apitest.RemoveMember(owners[i], targets[i])
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		// The loser is refused by the owner count, or (if the winner
		// removed it first) its own token is no longer valid.
		code := connect.CodeOf(err)
		require.Contains(t, []connect.Code{connect.CodeFailedPrecondition, connect.CodeUnauthenticated}, code, err)
	}
	require.Equal(t, 1, ok)
	require.Equal(t, 1, apitest.OwnerCount(t, s, `select count(*) from memberships where tenant_id = $1 and role = 'owner'`, a.ID))
}

// TestMemberRevocation: a role change ends the member's access tokens at
// once and a refreshed session carries the new role; a removal ends the
// access token on the very next call and deletes the refresh tokens.
func TestMemberRevocation(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := apitest.SignUpRoomy(t, s)
	owner := s.AsUser(a.Owner)
	first := apitest.Invite(t, owner, "mia@example.com", quartersv1.Role_ROLE_MEMBER)
	second := apitest.Invite(t, owner, "mia@example.com", quartersv1.Role_ROLE_ADMIN)
	sess, err := apitest.AcceptInvitation(s, first, apitest.MemberPassword)
	require.NoError(t, err)
	userID := sess.GetUser().GetId()
	require.NoError(t, apitest.ListProjects(s.AsUser(sess)))

	resp, err := owner.Members.UpdateMemberRole(ctx, req(&quartersv1.UpdateMemberRoleRequest{UserId: userID, Role: quartersv1.Role_ROLE_ADMIN}))
	require.NoError(t, err)
	require.Equal(t, quartersv1.Role_ROLE_ADMIN, resp.Msg.GetMember().GetRole())
	require.Equal(t, "mia@example.com", resp.Msg.GetMember().GetUser().GetEmail())
	apitest.RequireCode(t, apitest.ListProjects(s.AsUser(sess)), connect.CodeUnauthenticated)

	refreshed, err := s.As("", "", "").Auth.RefreshToken(ctx, req(&quartersv1.RefreshTokenRequest{RefreshToken: sess.GetRefreshToken()}))
	require.NoError(t, err)
	sess2 := refreshed.Msg.GetSession()
	require.Equal(t, quartersv1.Role_ROLE_ADMIN, sess2.GetRole())
	_, err = s.AsUser(sess2).Auth.ListApiKeys(ctx, req(&quartersv1.ListApiKeysRequest{}))
	require.NoError(t, err, "the new token carries the admin role")
	signedIn, err := apitest.SignIn(s, "mia@example.com", apitest.MemberPassword, a.Slug)
	require.NoError(t, err)
	require.Equal(t, quartersv1.Role_ROLE_ADMIN, signedIn.GetRole())

	require.NotZero(t, apitest.OwnerCount(t, s, `select count(*) from refresh_tokens where tenant_id = $1 and user_id = $2`, a.ID, userID))
	require.NoError(t, apitest.RemoveMember(owner, userID))
	apitest.RequireCode(t, apitest.ListProjects(s.AsUser(sess2)), connect.CodeUnauthenticated)
	apitest.RequireCode(t, apitest.ListProjects(s.AsUser(signedIn)), connect.CodeUnauthenticated)
	_, err = s.As("", "", "").Auth.RefreshToken(ctx, req(&quartersv1.RefreshTokenRequest{RefreshToken: sess2.GetRefreshToken()}))
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)
	require.Zero(t, apitest.OwnerCount(t, s, `select count(*) from refresh_tokens where tenant_id = $1 and user_id = $2`, a.ID, userID))
	_, err = apitest.SignIn(s, "mia@example.com", apitest.MemberPassword, a.Slug)
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)
	require.NotContains(t, apitest.Members(t, owner), "mia@example.com")
	apitest.RequireCode(t, apitest.RemoveMember(owner, userID), connect.CodeNotFound)
	// The invitation left over from before she joined was revoked with
	// the membership: it does not let her back in, nor is it listed.
	_, err = apitest.AcceptInvitation(s, second, apitest.MemberPassword)
	apitest.RequireCode(t, err, connect.CodeNotFound)
	require.Equal(t, 1, apitest.OwnerCount(t, s, `select count(*) from invitations where tenant_id = $1
		and email = 'mia@example.com' and revoke_time is not null and accept_time is null`, a.ID))
	inv, err := owner.Members.ListInvitations(ctx, req(&quartersv1.ListInvitationsRequest{}))
	require.NoError(t, err)
	require.Empty(t, inv.Msg.GetInvitations())

	// Invited back, the same user (password unchanged) rejoins.
	back, err := apitest.AcceptInvitation(s, apitest.Invite(t, owner, "mia@example.com", quartersv1.Role_ROLE_MEMBER), apitest.MemberPassword)
	require.NoError(t, err)
	require.Equal(t, userID, back.GetUser().GetId())
	require.NoError(t, apitest.ListProjects(s.AsUser(back)))
}

// TestMemberRemovalReplicas: a removal made through one replica ends the
// member's access token on another (Redis pub/sub), not after a TTL.
func TestMemberRemovalReplicas(t *testing.T) {
	t.Parallel()
	rs := redistest.New(t)
	s1 := servertest.NewWith(t, &servertest.Opts{Redis: rs.Options()})
	s2 := servertest.NewWith(t, &servertest.Opts{Redis: rs.Options(), Share: s1})
	a := apitest.SignUpRoomy(t, s1)
	sess := apitest.Join(t, s1, a, "rita@example.com", quartersv1.Role_ROLE_MEMBER)
	require.NoError(t, apitest.ListProjects(s2.AsUser(sess)), "replica 2 caches the tenant with the new member")

	require.NoError(t, apitest.RemoveMember(s1.AsUser(a.Owner), sess.GetUser().GetId()))
	require.Eventually(t, func() bool {
		return connect.CodeOf(apitest.ListProjects(s2.AsUser(sess))) == connect.CodeUnauthenticated
	}, time.Second, 10*time.Millisecond, "replica 2 still accepts the removed member's token")
}

// TestMemberIsolation: another tenant cannot see, change or remove this
// tenant's members; its attempts look like a user that does not exist.
func TestMemberIsolation(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := apitest.SignUpRoomy(t, s)
	b := apitest.SignUpRoomy(t, s)
	sess := apitest.Join(t, s, a, "amy@example.com", quartersv1.Role_ROLE_MEMBER)
	bOwner := s.AsUser(b.Owner)

	require.Equal(t, map[string]quartersv1.Role{b.OwnerEmail: quartersv1.Role_ROLE_OWNER}, apitest.Members(t, bOwner))
	for _, id := range []string{sess.GetUser().GetId(), a.Owner.GetUser().GetId()} {
		for name, tn := range map[string]*servertest.Tenant{"b owner": bOwner, "b key": b} {
			require.Equal(t, "member not found", apitest.RequireCode(t, apitest.SetRole(tn, id, quartersv1.Role_ROLE_ADMIN), connect.CodeNotFound).Message(), name)
			require.Equal(t, "member not found", apitest.RequireCode(t, apitest.RemoveMember(tn, id), connect.CodeNotFound).Message(), name)
		}
	}
	random := uuid.NewString()
	require.Equal(t, "member not found", apitest.RequireCode(t, apitest.SetRole(bOwner, random, quartersv1.Role_ROLE_ADMIN), connect.CodeNotFound).Message())
	require.Equal(t, "member not found", apitest.RequireCode(t, apitest.RemoveMember(bOwner, random), connect.CodeNotFound).Message())

	require.Equal(t, map[string]quartersv1.Role{
		a.OwnerEmail:      quartersv1.Role_ROLE_OWNER,
		"amy@example.com": quartersv1.Role_ROLE_MEMBER,
	}, apitest.Members(t, s.AsUser(a.Owner)))
	require.NoError(t, apitest.ListProjects(s.AsUser(sess)), "a's member's session is untouched")
	// A's member's token does not reach b's members either.
	_, err := s.AsAt(s.URL, b.ID, b.Slug, sess.GetAccessToken(), connect.WithInterceptors(servertest.Header("X-Tenant-ID", b.ID))).
		Members.ListMembers(ctx, req(&quartersv1.ListMembersRequest{}))
	apitest.RequireCode(t, err, connect.CodePermissionDenied)
}

// TestMemberQuotaRace: with max_members 5 (the owner holds one seat), 20
// parallel invitations yield exactly 4; the rest are RESOURCE_EXHAUSTED
// with a QuotaFailure. Pending invitations hold seats; an accepted one
// keeps its seat; an expired invitation or a removed member frees one;
// acceptance is refused too once the limit is lowered below the members.
func TestMemberQuotaRace(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	s.Unthrottle(t, a.ID) // the rate limit is not under test
	apitest.SetMaxMembers(t, s, a.ID, 5)

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		tokens   = map[string]string{} // email → token
		refusals []error
	)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			email := fmt.Sprintf("racer%d@example.com", i)
			resp, err := a.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: email, Role: quartersv1.Role_ROLE_MEMBER}))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refusals = append(refusals, err)
				return
			}
			tokens[email] = resp.Msg.GetInvitation().GetId()
		}()
	}
	wg.Wait()
	require.Len(t, tokens, 4)
	for email := range tokens {
		tokens[email] = apitest.InvitationMail(t, s, email)
	}
	require.Len(t, refusals, 16)
	for _, err := range refusals {
		apitest.RequireMemberQuota(t, err, 5)
	}
	invitations := apitest.OwnerCount(t, s, `select count(*) from invitations where tenant_id = $1 and email like 'racer%'`, a.ID)
	require.Equal(t, 4, invitations)

	var emails []string
	for e := range tokens {
		emails = append(emails, e)
	}
	// Inviting a pending email again takes no second seat; a member is
	// ALREADY_EXISTS; anyone new is refused.
	apitest.Invite(t, a, emails[0], quartersv1.Role_ROLE_ADMIN)
	_, err := a.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: a.OwnerEmail, Role: quartersv1.Role_ROLE_MEMBER}))
	apitest.RequireCode(t, err, connect.CodeAlreadyExists)
	_, err = a.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "extra@example.com", Role: quartersv1.Role_ROLE_MEMBER}))
	apitest.RequireMemberQuota(t, err, 5)

	// Accepting moves the seat from the invitation to the membership.
	sess, err := apitest.AcceptInvitation(s, tokens[emails[0]], apitest.MemberPassword)
	require.NoError(t, err)
	_, err = a.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "extra@example.com", Role: quartersv1.Role_ROLE_MEMBER}))
	apitest.RequireMemberQuota(t, err, 5)

	// An expired invitation frees its seat.
	s.Exec(t, a.ID, `update invitations set expire_time = now() - interval '1 second' where tenant_id = $1 and email = $2`, a.ID, emails[1])
	apitest.Invite(t, a, "extra@example.com", quartersv1.Role_ROLE_MEMBER)
	_, err = a.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "extra2@example.com", Role: quartersv1.Role_ROLE_MEMBER}))
	apitest.RequireMemberQuota(t, err, 5)

	// So does a removed member.
	require.NoError(t, apitest.RemoveMember(s.AsUser(a.Owner), sess.GetUser().GetId()))
	apitest.Invite(t, a, "extra2@example.com", quartersv1.Role_ROLE_MEMBER)

	// Acceptance counts members only: with the limit lowered to the two
	// members there will be, the first acceptance fits, the next waits
	// (and its invitation stays usable) until the limit is raised.
	apitest.SetMaxMembers(t, s, a.ID, 2)
	_, err = apitest.AcceptInvitation(s, tokens[emails[2]], apitest.MemberPassword)
	require.NoError(t, err)
	_, err = apitest.AcceptInvitation(s, tokens[emails[3]], apitest.MemberPassword)
	apitest.RequireMemberQuota(t, err, 2)
	apitest.SetMaxMembers(t, s, a.ID, 3)
	_, err = apitest.AcceptInvitation(s, tokens[emails[3]], apitest.MemberPassword)
	require.NoError(t, err)
	require.Len(t, apitest.Members(t, a), 3)
}

// TestMemberGetCurrentUser: the signed-in user sees themselves, the token's
// tenant and role, and their tenants; an API key is refused.
func TestMemberGetCurrentUser(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	_, err := a.Members.GetCurrentUser(ctx, req(&quartersv1.GetCurrentUserRequest{}))
	require.Contains(t, apitest.RequireCode(t, err, connect.CodePermissionDenied).Message(), "signed-in user")
	_, err = s.As("", "", "").Members.GetCurrentUser(ctx, req(&quartersv1.GetCurrentUserRequest{}))
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)

	me, err := s.AsUser(a.Owner).Members.GetCurrentUser(ctx, req(&quartersv1.GetCurrentUserRequest{}))
	require.NoError(t, err)
	require.Equal(t, a.Owner.GetUser().GetId(), me.Msg.GetUser().GetId())
	require.Equal(t, a.OwnerEmail, me.Msg.GetUser().GetEmail())
	require.True(t, me.Msg.GetUser().GetHasPassword())
	require.Equal(t, a.ID, me.Msg.GetTenantId())
	require.Equal(t, quartersv1.Role_ROLE_OWNER, me.Msg.GetRole())
	require.Len(t, me.Msg.GetTenants(), 1)
	require.Equal(t, a.Slug, me.Msg.GetTenants()[0].GetTenantSlug())
}
