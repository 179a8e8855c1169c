package router_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/proto"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/notify"
	"github.com/quarters-dev/quarters/internal/redistest"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// memberPassword is the password invitees in these tests choose.
const memberPassword = "member password 123"

// signUpRoomy signs up a tenant whose limits are out of the way: room for
// 50 members and no rate limit to speak of.
func signUpRoomy(t *testing.T, s *servertest.Server) *servertest.Tenant {
	t.Helper()
	a := s.SignUp(t)
	setMaxMembers(t, s, a.ID, 50)
	s.Unthrottle(t, a.ID)
	return a
}

func setMaxMembers(t *testing.T, s *servertest.Server, tenantID string, n int) {
	t.Helper()
	s.Exec(t, tenantID, `insert into tenant_overrides (tenant_id, max_members) values ($1, $2)
		on conflict (tenant_id) do update set max_members = $2`, tenantID, n)
}

// invite invites email with role as by, and returns the token mailed to
// email (never returned to by).
func invite(t *testing.T, by *servertest.Tenant, email string, role quartersv1.Role) string {
	t.Helper()
	_, token := inviteFull(t, by, email, role)
	return token
}

// invitationMail waits for the next invitation mailed to email and
// returns its token.
func invitationMail(t *testing.T, s *servertest.Server, email string) string {
	t.Helper()
	_, token := s.Mailbox.Wait(t, email, notify.SubjectInvitation)
	require.Regexp(t, `^qi_`, token)
	return token
}

func acceptInvitation(s *servertest.Server, token, pw string) (*quartersv1.Session, error) {
	resp, err := s.As("", "", "").Members.AcceptInvitation(ctx, req(&quartersv1.AcceptInvitationRequest{Token: token, Password: pw}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetSession(), nil
}

// join invites email into tn (as tn's owner) with role and accepts it as a
// new user, returning the new member's session.
func join(t *testing.T, s *servertest.Server, tn *servertest.Tenant, email string, role quartersv1.Role) *quartersv1.Session {
	t.Helper()
	sess, err := acceptInvitation(s, invite(t, s.AsUser(tn.Owner), email, role), memberPassword)
	require.NoError(t, err)
	require.Equal(t, role, sess.GetRole())
	return sess
}

// members lists tn's members as email → role, checking every page.
func members(t *testing.T, tn *servertest.Tenant) map[string]quartersv1.Role {
	t.Helper()
	out := map[string]quartersv1.Role{}
	token := ""
	for {
		resp, err := tn.Members.ListMembers(ctx, req(&quartersv1.ListMembersRequest{PageToken: token}))
		require.NoError(t, err)
		for _, m := range resp.Msg.GetMembers() {
			out[m.GetUser().GetEmail()] = m.GetRole()
		}
		if token = resp.Msg.GetNextPageToken(); token == "" {
			return out
		}
	}
}

func setRole(tn *servertest.Tenant, userID string, role quartersv1.Role) error {
	_, err := tn.Members.UpdateMemberRole(ctx, req(&quartersv1.UpdateMemberRoleRequest{UserId: userID, Role: role}))
	return err
}

func removeMember(tn *servertest.Tenant, userID string) error {
	_, err := tn.Members.RemoveMember(ctx, req(&quartersv1.RemoveMemberRequest{UserId: userID}))
	return err
}

func listProjects(tn *servertest.Tenant) error {
	_, err := tn.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	return err
}

func signIn(s *servertest.Server, email, pw, tenantSlug string) (*quartersv1.Session, error) {
	resp, err := s.As("", "", "").Auth.SignIn(ctx, req(&quartersv1.SignInRequest{Email: email, Password: pw, Tenant: tenantSlug}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetSession(), nil
}

// ownerCount runs a count query as the database owner (no RLS).
func ownerCount(t *testing.T, s *servertest.Server, sql string, args ...any) int {
	t.Helper()
	conn, err := pgx.Connect(ctx, s.OwnerURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, sql, args...).Scan(&n))
	return n
}

// TestInvitationAccept: a new person accepts an invitation, setting a
// password, and is a member with the invited role; the token works once,
// not after it expires, and a refused password leaves it usable.
func TestInvitationAccept(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := signUpRoomy(t, s)
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
	_, err = acceptInvitation(s, token, "short")
	cerr := requireCode(t, err, connect.CodeInvalidArgument)
	require.Equal(t, []string{"password"}, violations(t, cerr))
	require.Contains(t, cerr.Message(), "at least 10 characters")

	sess, err := acceptInvitation(s, token, memberPassword)
	require.NoError(t, err)
	require.Equal(t, quartersv1.Role_ROLE_MEMBER, sess.GetRole())
	require.Equal(t, a.ID, sess.GetTenantId())
	require.Equal(t, a.Slug, sess.GetTenantSlug())
	require.Equal(t, "Ann@Example.com", sess.GetUser().GetEmail())
	require.True(t, sess.GetUser().GetHasPassword())
	require.NotEmpty(t, sess.GetRefreshToken())

	ann := s.AsUser(sess)
	require.NoError(t, listProjects(ann), "the new member's session works")
	// Members may list members; they see both, with their roles.
	require.Equal(t, map[string]quartersv1.Role{
		a.OwnerEmail:      quartersv1.Role_ROLE_OWNER,
		"Ann@Example.com": quartersv1.Role_ROLE_MEMBER,
	}, members(t, ann))
	// The password set at acceptance signs in (any case of the email).
	_, err = signIn(s, "ann@example.com", memberPassword, a.Slug)
	require.NoError(t, err)

	// A token works once; the same answer as for a made-up or garbled one.
	_, err = acceptInvitation(s, token, memberPassword)
	used := requireCode(t, err, connect.CodeNotFound)
	require.Equal(t, "invitation is invalid, expired or already used; ask for a new one", used.Message())
	madeUp, _, _ := auth.InvitationToken.New()
	for _, bad := range []string{madeUp, "qi_garbled", mangle(token)} {
		_, err = acceptInvitation(s, bad, memberPassword)
		require.Equal(t, used.Message(), requireCode(t, err, connect.CodeNotFound).Message(), bad)
	}

	// An expired invitation is refused the same way.
	late := invite(t, owner, "late@example.com", quartersv1.Role_ROLE_ADMIN)
	s.Exec(t, a.ID, `update invitations set expire_time = now() - interval '1 minute'
		where tenant_id = $1 and email = 'late@example.com'`, a.ID)
	_, err = acceptInvitation(s, late, memberPassword)
	require.Equal(t, used.Message(), requireCode(t, err, connect.CodeNotFound).Message())
	require.NotContains(t, members(t, owner), "late@example.com")

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
	a := signUpRoomy(t, s)
	b := signUpRoomy(t, s)

	token := invite(t, s.AsUser(a.Owner), b.OwnerEmail, quartersv1.Role_ROLE_ADMIN)
	_, err := acceptInvitation(s, token, "not the password at all")
	requireCode(t, err, connect.CodeUnauthenticated)
	// Length rules are for new passwords only: a short wrong one is still
	// just wrong.
	_, err = acceptInvitation(s, token, "short")
	requireCode(t, err, connect.CodeUnauthenticated)
	require.NotContains(t, members(t, a), b.OwnerEmail)

	sess, err := acceptInvitation(s, token, servertest.OwnerPassword)
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
	_, err = signIn(s, b.OwnerEmail, servertest.OwnerPassword, b.Slug)
	require.NoError(t, err)

	// Inviting a member again is ALREADY_EXISTS, whatever the case.
	_, err = a.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: strings.ToUpper(b.OwnerEmail), Role: quartersv1.Role_ROLE_MEMBER}))
	requireCode(t, err, connect.CodeAlreadyExists)
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
	require.Equal(t, 1, ownerCount(t, s, `select count(*) from email_tokens where purpose = 'set_password'
		and expire_time between create_time + interval '1439 minutes' and create_time + interval '1441 minutes'`), "a sign-up's set-password link lives a day")
	_, err = signIn(s, email, memberPassword, "solo")
	requireCode(t, err, connect.CodeUnauthenticated)

	auth := s.As("", "", "").Auth
	_, err = auth.ResetPassword(ctx, req(&quartersv1.ResetPasswordRequest{Token: token, NewPassword: "short"}))
	require.Equal(t, []string{"new_password"}, violations(t, requireCode(t, err, connect.CodeInvalidArgument)))
	_, err = auth.ResetPassword(ctx, req(&quartersv1.ResetPasswordRequest{Token: token, NewPassword: memberPassword}))
	require.NoError(t, err)
	sess, err := signIn(s, email, memberPassword, "solo")
	require.NoError(t, err)
	require.Equal(t, quartersv1.Role_ROLE_OWNER, sess.GetRole())
	require.True(t, sess.GetUser().GetEmailVerified())
	owner := s.AsUser(sess)
	require.Equal(t, map[string]quartersv1.Role{email: quartersv1.Role_ROLE_OWNER}, members(t, owner))
	_, err = auth.ResetPassword(ctx, req(&quartersv1.ResetPasswordRequest{Token: token, NewPassword: "another password"}))
	requireCode(t, err, connect.CodeNotFound)
}

// TestMemberRules: only owners make, unmake, invite or remove owners;
// members manage nobody; nobody raises their own role; a tenant keeps at
// least one owner; a second owner can demote the first.
func TestMemberRules(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := signUpRoomy(t, s)
	owner := s.AsUser(a.Owner)
	ownerID := a.Owner.GetUser().GetId()
	adminSess := join(t, s, a, "admin@example.com", quartersv1.Role_ROLE_ADMIN)
	admin := s.AsUser(adminSess)
	memberSess := join(t, s, a, "member@example.com", quartersv1.Role_ROLE_MEMBER)
	member := s.AsUser(memberSess)
	memberID := memberSess.GetUser().GetId()

	// Admins, by token or API key, cannot hand out or take away ownership.
	for name, tn := range map[string]*servertest.Tenant{"admin user": admin, "admin key": a} {
		_, err := tn.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "boss@example.com", Role: quartersv1.Role_ROLE_OWNER}))
		require.Contains(t, requireCode(t, err, connect.CodePermissionDenied).Message(), "only owners", name)
		require.Contains(t, requireCode(t, setRole(tn, memberID, quartersv1.Role_ROLE_OWNER), connect.CodePermissionDenied).Message(), "only owners", name)
		requireCode(t, setRole(tn, ownerID, quartersv1.Role_ROLE_ADMIN), connect.CodePermissionDenied)
		requireCode(t, removeMember(tn, ownerID), connect.CodePermissionDenied)
	}
	// Nobody raises their own role.
	requireCode(t, setRole(admin, adminSess.GetUser().GetId(), quartersv1.Role_ROLE_OWNER), connect.CodePermissionDenied)
	// Members manage nobody: the access rule refuses them.
	_, err := member.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "friend@example.com", Role: quartersv1.Role_ROLE_MEMBER}))
	require.Contains(t, requireCode(t, err, connect.CodePermissionDenied).Message(), "requires role admin")
	requireCode(t, setRole(member, memberID, quartersv1.Role_ROLE_ADMIN), connect.CodePermissionDenied)
	requireCode(t, removeMember(member, adminSess.GetUser().GetId()), connect.CodePermissionDenied)
	// Admins manage members and admins.
	require.NoError(t, setRole(admin, memberID, quartersv1.Role_ROLE_MEMBER), "setting the same role is a no-op")
	require.NoError(t, listProjects(member), "a no-op change ends no session")
	invite(t, admin, "helper@example.com", quartersv1.Role_ROLE_ADMIN)

	// The last owner can be neither demoted nor removed, even by itself.
	cerr := requireCode(t, setRole(owner, ownerID, quartersv1.Role_ROLE_ADMIN), connect.CodeFailedPrecondition)
	require.Contains(t, cerr.Message(), "last owner")
	requireCode(t, removeMember(owner, ownerID), connect.CodeFailedPrecondition)

	// With two owners, one can demote the other, and then the last one
	// stays.
	require.NoError(t, setRole(owner, adminSess.GetUser().GetId(), quartersv1.Role_ROLE_OWNER))
	second, err := signIn(s, "admin@example.com", memberPassword, a.Slug)
	require.NoError(t, err)
	require.Equal(t, quartersv1.Role_ROLE_OWNER, second.GetRole())
	owner2 := s.AsUser(second)
	require.NoError(t, setRole(owner2, ownerID, quartersv1.Role_ROLE_MEMBER))
	requireCode(t, setRole(owner2, second.GetUser().GetId(), quartersv1.Role_ROLE_ADMIN), connect.CodeFailedPrecondition)
	require.Equal(t, map[string]quartersv1.Role{
		a.OwnerEmail:         quartersv1.Role_ROLE_MEMBER,
		"admin@example.com":  quartersv1.Role_ROLE_OWNER,
		"member@example.com": quartersv1.Role_ROLE_MEMBER,
	}, members(t, owner2))
}

// TestMemberLastOwnerRace: two owners demoting each other at once cannot
// both succeed: the tenant keeps an owner.
func TestMemberLastOwnerRace(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := signUpRoomy(t, s)
	otherSess := join(t, s, a, "co-owner@example.com", quartersv1.Role_ROLE_OWNER)
	owners := []*servertest.Tenant{s.AsUser(a.Owner), s.AsUser(otherSess)}
	targets := []string{otherSess.GetUser().GetId(), a.Owner.GetUser().GetId()}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = removeMember(owners[i], targets[i])
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
	require.Equal(t, 1, ownerCount(t, s, `select count(*) from memberships where tenant_id = $1 and role = 'owner'`, a.ID))
}

// TestMemberRevocation: a role change ends the member's access tokens at
// once and a refreshed session carries the new role; a removal ends the
// access token on the very next call and deletes the refresh tokens.
func TestMemberRevocation(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := signUpRoomy(t, s)
	owner := s.AsUser(a.Owner)
	first := invite(t, owner, "mia@example.com", quartersv1.Role_ROLE_MEMBER)
	second := invite(t, owner, "mia@example.com", quartersv1.Role_ROLE_ADMIN)
	sess, err := acceptInvitation(s, first, memberPassword)
	require.NoError(t, err)
	userID := sess.GetUser().GetId()
	require.NoError(t, listProjects(s.AsUser(sess)))

	resp, err := owner.Members.UpdateMemberRole(ctx, req(&quartersv1.UpdateMemberRoleRequest{UserId: userID, Role: quartersv1.Role_ROLE_ADMIN}))
	require.NoError(t, err)
	require.Equal(t, quartersv1.Role_ROLE_ADMIN, resp.Msg.GetMember().GetRole())
	require.Equal(t, "mia@example.com", resp.Msg.GetMember().GetUser().GetEmail())
	requireCode(t, listProjects(s.AsUser(sess)), connect.CodeUnauthenticated)

	refreshed, err := s.As("", "", "").Auth.RefreshToken(ctx, req(&quartersv1.RefreshTokenRequest{RefreshToken: sess.GetRefreshToken()}))
	require.NoError(t, err)
	sess2 := refreshed.Msg.GetSession()
	require.Equal(t, quartersv1.Role_ROLE_ADMIN, sess2.GetRole())
	_, err = s.AsUser(sess2).Auth.ListApiKeys(ctx, req(&quartersv1.ListApiKeysRequest{}))
	require.NoError(t, err, "the new token carries the admin role")
	signedIn, err := signIn(s, "mia@example.com", memberPassword, a.Slug)
	require.NoError(t, err)
	require.Equal(t, quartersv1.Role_ROLE_ADMIN, signedIn.GetRole())

	require.NotZero(t, ownerCount(t, s, `select count(*) from refresh_tokens where tenant_id = $1 and user_id = $2`, a.ID, userID))
	require.NoError(t, removeMember(owner, userID))
	requireCode(t, listProjects(s.AsUser(sess2)), connect.CodeUnauthenticated)
	requireCode(t, listProjects(s.AsUser(signedIn)), connect.CodeUnauthenticated)
	_, err = s.As("", "", "").Auth.RefreshToken(ctx, req(&quartersv1.RefreshTokenRequest{RefreshToken: sess2.GetRefreshToken()}))
	requireCode(t, err, connect.CodeUnauthenticated)
	require.Zero(t, ownerCount(t, s, `select count(*) from refresh_tokens where tenant_id = $1 and user_id = $2`, a.ID, userID))
	_, err = signIn(s, "mia@example.com", memberPassword, a.Slug)
	requireCode(t, err, connect.CodeUnauthenticated)
	require.NotContains(t, members(t, owner), "mia@example.com")
	requireCode(t, removeMember(owner, userID), connect.CodeNotFound)
	// The invitation left over from before she joined was revoked with
	// the membership: it does not let her back in, nor is it listed.
	_, err = acceptInvitation(s, second, memberPassword)
	requireCode(t, err, connect.CodeNotFound)
	require.Equal(t, 1, ownerCount(t, s, `select count(*) from invitations where tenant_id = $1
		and email = 'mia@example.com' and revoke_time is not null and accept_time is null`, a.ID))
	inv, err := owner.Members.ListInvitations(ctx, req(&quartersv1.ListInvitationsRequest{}))
	require.NoError(t, err)
	require.Empty(t, inv.Msg.GetInvitations())

	// Invited back, the same user (password unchanged) rejoins.
	back, err := acceptInvitation(s, invite(t, owner, "mia@example.com", quartersv1.Role_ROLE_MEMBER), memberPassword)
	require.NoError(t, err)
	require.Equal(t, userID, back.GetUser().GetId())
	require.NoError(t, listProjects(s.AsUser(back)))
}

// TestMemberRemovalReplicas: a removal made through one replica ends the
// member's access token on another (Redis pub/sub), not after a TTL.
func TestMemberRemovalReplicas(t *testing.T) {
	t.Parallel()
	rs := redistest.New(t)
	s1 := servertest.NewWith(t, &servertest.Opts{Redis: rs.Options()})
	s2 := servertest.NewWith(t, &servertest.Opts{Redis: rs.Options(), Share: s1})
	a := signUpRoomy(t, s1)
	sess := join(t, s1, a, "rita@example.com", quartersv1.Role_ROLE_MEMBER)
	require.NoError(t, listProjects(s2.AsUser(sess)), "replica 2 caches the tenant with the new member")

	require.NoError(t, removeMember(s1.AsUser(a.Owner), sess.GetUser().GetId()))
	require.Eventually(t, func() bool {
		return connect.CodeOf(listProjects(s2.AsUser(sess))) == connect.CodeUnauthenticated
	}, time.Second, 10*time.Millisecond, "replica 2 still accepts the removed member's token")
}

// TestMemberIsolation: another tenant cannot see, change or remove this
// tenant's members; its attempts look like a user that does not exist.
func TestMemberIsolation(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := signUpRoomy(t, s)
	b := signUpRoomy(t, s)
	sess := join(t, s, a, "amy@example.com", quartersv1.Role_ROLE_MEMBER)
	bOwner := s.AsUser(b.Owner)

	require.Equal(t, map[string]quartersv1.Role{b.OwnerEmail: quartersv1.Role_ROLE_OWNER}, members(t, bOwner))
	for _, id := range []string{sess.GetUser().GetId(), a.Owner.GetUser().GetId()} {
		for name, tn := range map[string]*servertest.Tenant{"b owner": bOwner, "b key": b} {
			require.Equal(t, "member not found", requireCode(t, setRole(tn, id, quartersv1.Role_ROLE_ADMIN), connect.CodeNotFound).Message(), name)
			require.Equal(t, "member not found", requireCode(t, removeMember(tn, id), connect.CodeNotFound).Message(), name)
		}
	}
	random := uuid.NewString()
	require.Equal(t, "member not found", requireCode(t, setRole(bOwner, random, quartersv1.Role_ROLE_ADMIN), connect.CodeNotFound).Message())
	require.Equal(t, "member not found", requireCode(t, removeMember(bOwner, random), connect.CodeNotFound).Message())

	require.Equal(t, map[string]quartersv1.Role{
		a.OwnerEmail:      quartersv1.Role_ROLE_OWNER,
		"amy@example.com": quartersv1.Role_ROLE_MEMBER,
	}, members(t, s.AsUser(a.Owner)))
	require.NoError(t, listProjects(s.AsUser(sess)), "a's member's session is untouched")
	// A's member's token does not reach b's members either.
	_, err := s.AsAt(s.URL, b.ID, b.Slug, sess.GetAccessToken(), connect.WithInterceptors(servertest.Header("X-Tenant-ID", b.ID))).
		Members.ListMembers(ctx, req(&quartersv1.ListMembersRequest{}))
	requireCode(t, err, connect.CodePermissionDenied)
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
	setMaxMembers(t, s, a.ID, 5)

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
		tokens[email] = invitationMail(t, s, email)
	}
	require.Len(t, refusals, 16)
	for _, err := range refusals {
		requireMemberQuota(t, err, 5)
	}
	invitations := ownerCount(t, s, `select count(*) from invitations where tenant_id = $1 and email like 'racer%'`, a.ID)
	require.Equal(t, 4, invitations)

	var emails []string
	for e := range tokens {
		emails = append(emails, e)
	}
	// Inviting a pending email again takes no second seat; a member is
	// ALREADY_EXISTS; anyone new is refused.
	invite(t, a, emails[0], quartersv1.Role_ROLE_ADMIN)
	_, err := a.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: a.OwnerEmail, Role: quartersv1.Role_ROLE_MEMBER}))
	requireCode(t, err, connect.CodeAlreadyExists)
	_, err = a.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "extra@example.com", Role: quartersv1.Role_ROLE_MEMBER}))
	requireMemberQuota(t, err, 5)

	// Accepting moves the seat from the invitation to the membership.
	sess, err := acceptInvitation(s, tokens[emails[0]], memberPassword)
	require.NoError(t, err)
	_, err = a.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "extra@example.com", Role: quartersv1.Role_ROLE_MEMBER}))
	requireMemberQuota(t, err, 5)

	// An expired invitation frees its seat.
	s.Exec(t, a.ID, `update invitations set expire_time = now() - interval '1 second' where tenant_id = $1 and email = $2`, a.ID, emails[1])
	invite(t, a, "extra@example.com", quartersv1.Role_ROLE_MEMBER)
	_, err = a.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "extra2@example.com", Role: quartersv1.Role_ROLE_MEMBER}))
	requireMemberQuota(t, err, 5)

	// So does a removed member.
	require.NoError(t, removeMember(s.AsUser(a.Owner), sess.GetUser().GetId()))
	invite(t, a, "extra2@example.com", quartersv1.Role_ROLE_MEMBER)

	// Acceptance counts members only: with the limit lowered to the two
	// members there will be, the first acceptance fits, the next waits
	// (and its invitation stays usable) until the limit is raised.
	setMaxMembers(t, s, a.ID, 2)
	_, err = acceptInvitation(s, tokens[emails[2]], memberPassword)
	require.NoError(t, err)
	_, err = acceptInvitation(s, tokens[emails[3]], memberPassword)
	requireMemberQuota(t, err, 2)
	setMaxMembers(t, s, a.ID, 3)
	_, err = acceptInvitation(s, tokens[emails[3]], memberPassword)
	require.NoError(t, err)
	require.Len(t, members(t, a), 3)
}

func requireMemberQuota(t *testing.T, err error, limit int64) {
	t.Helper()
	cerr := requireCode(t, err, connect.CodeResourceExhausted)
	require.Contains(t, cerr.Message(), fmt.Sprintf("allows %d members", limit))
	var qf *errdetails.QuotaFailure
	for _, d := range cerr.Details() {
		if v, err := d.Value(); err == nil {
			if q, ok := v.(*errdetails.QuotaFailure); ok {
				qf = q
			}
		}
	}
	require.NotNil(t, qf, "no QuotaFailure detail")
	require.Equal(t, "max_members", qf.GetViolations()[0].GetQuotaId())
	require.Equal(t, limit, qf.GetViolations()[0].GetQuotaValue())
}

// TestMemberGetCurrentUser: the signed-in user sees themselves, the token's
// tenant and role, and their tenants; an API key is refused.
func TestMemberGetCurrentUser(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	_, err := a.Members.GetCurrentUser(ctx, req(&quartersv1.GetCurrentUserRequest{}))
	require.Contains(t, requireCode(t, err, connect.CodePermissionDenied).Message(), "signed-in user")
	_, err = s.As("", "", "").Members.GetCurrentUser(ctx, req(&quartersv1.GetCurrentUserRequest{}))
	requireCode(t, err, connect.CodeUnauthenticated)

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
