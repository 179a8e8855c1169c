package authsvc_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/notify"
	"github.com/quarters-dev/quarters/internal/redistest"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// anonAuth is AuthService without a credential.
func anonAuth(s *servertest.Server) *servertest.Tenant { return s.As("", "", "") }

// requestReset asks for a reset of email's password.
func requestReset(t *testing.T, s *servertest.Server, email string) {
	t.Helper()
	_, err := anonAuth(s).Auth.RequestPasswordReset(ctx, req(&quartersv1.RequestPasswordResetRequest{Email: email}))
	require.NoError(t, err)
}

// resetMail asks for a reset and returns the mailed token.
func resetMail(t *testing.T, s *servertest.Server, email string) string {
	t.Helper()
	requestReset(t, s, email)
	msg, token := s.Mailbox.Wait(t, email, notify.SubjectReset)
	require.Regexp(t, `^qp_`, token)
	require.Contains(t, msg.Text, servertest.LinkURL+"/reset-password?token="+token)
	return token
}

func resetPassword(s *servertest.Server, token, pw string) error {
	_, err := anonAuth(s).Auth.ResetPassword(ctx, req(&quartersv1.ResetPasswordRequest{Token: token, NewPassword: pw}))
	return err
}

func refresh(s *servertest.Server, rt string) (*quartersv1.Session, error) {
	resp, err := anonAuth(s).Auth.RefreshToken(ctx, req(&quartersv1.RefreshTokenRequest{RefreshToken: rt}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetSession(), nil
}

// jobsDone waits until every mail job is finished (completed, or given
// up), so a mail that was going to be sent has been.
func jobsDone(t *testing.T, s *servertest.Server) {
	t.Helper()
	deadline := time.Now().Add(servertest.MailWait)
	for apitest.OwnerCount(t, s, `select count(*) from river_job where kind = 'mail' and state not in ('completed', 'discarded', 'cancelled')`) > 0 {
		require.True(t, time.Now().Before(deadline), "mail jobs still pending")
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOwnerRecoversAfterTakeover: after both V1 attacks the real owner of
// globex-x resets the password with the link mailed to them and signs in
// as owner; the attacker's password opens nothing, anywhere.
func TestOwnerRecoversAfterTakeover(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	apitest.SignUpVictim(t, s)
	evil := apitest.AttackerTenant(t, s, "evil-x")
	_, err := evil.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: apitest.VictimEmail, Role: quartersv1.Role_ROLE_OWNER}))
	apitest.RequireCode(t, err, connect.CodePermissionDenied) // an admin key cannot invite owners
	_, err = evil.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: apitest.VictimEmail, Role: quartersv1.Role_ROLE_ADMIN}))
	require.NoError(t, err)
	_, err = s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{
		Slug: "evil-y", Name: "Evil", OwnerEmail: apitest.VictimEmail, OwnerPassword: apitest.MalloryChose,
	}))
	require.NoError(t, err)

	// The victim's mailbox: the sign-up's set-password link, the
	// invitation, the notice of evil-y (with a set-password link, since
	// the account was never verified). Everything token-bearing went to
	// the victim only.
	setPw, token := s.Mailbox.Wait(t, apitest.VictimEmail, notify.SubjectSetPassword)
	require.Contains(t, setPw.Text, "(globex-x)")
	require.Regexp(t, `^qp_`, token)
	_, invToken := s.Mailbox.Wait(t, apitest.VictimEmail, notify.SubjectInvitation)
	notice, noticeToken := s.Mailbox.Wait(t, apitest.VictimEmail, notify.SubjectOwner)
	require.Contains(t, notice.Text, "(evil-y)")
	require.Regexp(t, `^qp_`, noticeToken)
	jobsDone(t, s)
	attackerMail := s.Mailbox.Sent(apitest.AttackerEmail)
	require.Len(t, attackerMail, 1, "the attacker got its own verification mail, nothing else")
	require.Equal(t, notify.SubjectVerify, attackerMail[0].Subject)

	// The victim's own reset, requested now, works (any of the links would).
	fresh := resetMail(t, s, apitest.VictimEmail)
	require.NoError(t, resetPassword(s, fresh, "the real owner's password"))
	owner := apitest.MustSignIn(t, s, apitest.VictimEmail, "the real owner's password", "globex-x")
	require.Equal(t, quartersv1.Role_ROLE_OWNER, owner.GetRole())
	require.True(t, owner.GetUser().GetEmailVerified())
	// Using one link killed the others; the invitation still works, for
	// the victim, with the victim's password.
	for _, tok := range []string{token, noticeToken} {
		apitest.RequireCode(t, resetPassword(s, tok, apitest.MalloryChose), connect.CodeNotFound)
	}
	_, err = apitest.AcceptInvitation(s, invToken, apitest.MalloryChose)
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)
	apitest.RequireNoSignIn(t, s, apitest.VictimEmail, apitest.MalloryChose, "globex-x", "evil-x", "evil-y")
	inEvil, err := apitest.AcceptInvitation(s, invToken, "the real owner's password")
	require.NoError(t, err)
	require.Equal(t, owner.GetUser().GetId(), inEvil.GetUser().GetId())
}

// preHijack makes the account an attacker pre-creates for victim's email:
// a sign-up of the attacker's tenant naming the victim as owner, with the
// attacker's password. The account is unverified, so the attacker cannot
// sign in; to test that earlier sessions die too, the owner role then
// pretends the account could sign in for a moment (as accounts could
// before verification existed) and the attacker takes a session.
func preHijack(t *testing.T, s *servertest.Server, victim, slug string) (*quartersv1.Session, string) {
	t.Helper()
	resp, err := s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{
		Slug: slug, Name: "Pre-hijack", OwnerEmail: victim, OwnerPassword: apitest.MalloryChose,
	}))
	require.NoError(t, err)
	tenantID := resp.Msg.GetTenant().GetId()
	_, err = apitest.SignIn(s, victim, apitest.MalloryChose, slug)
	cerr := apitest.RequireCode(t, err, connect.CodeFailedPrecondition)
	require.Equal(t, "EMAIL_NOT_VERIFIED", apitest.ErrorInfo(t, cerr).GetReason())

	s.Exec(t, tenantID, `update users set email_verify_time = now() where lower(email) = lower($1)`, victim)
	sess := apitest.MustSignIn(t, s, victim, apitest.MalloryChose, slug)
	s.Exec(t, tenantID, `update users set email_verify_time = null where lower(email) = lower($1)`, victim)
	require.NoError(t, apitest.ListProjects(s.AsUser(sess)), "the attacker's session works until the victim claims the account")
	return sess, tenantID
}

// requireSessionDead: the session's refresh token and access token are
// both refused.
func requireSessionDead(t *testing.T, s *servertest.Server, sess *quartersv1.Session) {
	t.Helper()
	_, err := refresh(s, sess.GetRefreshToken())
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)
	apitest.RequireCode(t, apitest.ListProjects(s.AsUser(sess)), connect.CodeUnauthenticated)
}

// TestPreHijackInvitation: an account the attacker made with the victim's
// email is claimed by the victim accepting a real invitation: the
// victim's password replaces the attacker's, the address is verified, and
// the attacker's sessions end.
func TestPreHijackInvitation(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	victim := "victim@acme-p.example"
	attacker, _ := preHijack(t, s, victim, "evil-p")
	acme := apitest.SignUpRoomy(t, s)

	token := apitest.Invite(t, s.AsUser(acme.Owner), victim, quartersv1.Role_ROLE_MEMBER)
	sess, err := apitest.AcceptInvitation(s, token, "the victim's own password")
	require.NoError(t, err)
	require.True(t, sess.GetUser().GetEmailVerified())
	require.NoError(t, apitest.ListProjects(s.AsUser(sess)))

	requireSessionDead(t, s, attacker)
	apitest.RequireNoSignIn(t, s, victim, apitest.MalloryChose, acme.Slug, "evil-p")
	apitest.MustSignIn(t, s, victim, "the victim's own password", "evil-p")
}

// TestPreHijackReset: the same account, claimed by the victim resetting
// its password.
func TestPreHijackReset(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	victim := "victim@reset-p.example"
	attacker, _ := preHijack(t, s, victim, "evil-r")

	require.NoError(t, resetPassword(s, resetMail(t, s, victim), "the victim's own password"))
	requireSessionDead(t, s, attacker)
	apitest.RequireNoSignIn(t, s, victim, apitest.MalloryChose, "evil-r")
	apitest.MustSignIn(t, s, victim, "the victim's own password", "evil-r")
}

// TestPasswordReset: a reset link works once, not after it expires, and
// its request answers the same for an unknown email (which gets no mail);
// the reset ends every session of the user, on every replica.
func TestPasswordReset(t *testing.T) {
	t.Parallel()
	rs := redistest.New(t)
	s := servertest.NewWith(t, &servertest.Opts{Redis: rs.Options()})
	s2 := servertest.NewWith(t, &servertest.Opts{Redis: rs.Options(), Share: s})
	a := s.SignUp(t)
	other := apitest.MustSignIn(t, s, a.OwnerEmail, servertest.OwnerPassword, a.Slug)
	require.NoError(t, apitest.ListProjects(s2.AsUser(other)), "replica 2 caches the tenant")

	// Unknown email: the same empty answer, and no mail.
	_, err := anonAuth(s).Auth.RequestPasswordReset(ctx, req(&quartersv1.RequestPasswordResetRequest{Email: "nobody@" + a.Slug + ".example"}))
	require.NoError(t, err)

	token := resetMail(t, s, a.OwnerEmail)
	jobsDone(t, s)
	require.Empty(t, s.Mailbox.Sent("nobody@"+a.Slug+".example"))

	// Bad tokens: one answer, whatever is wrong.
	madeUp, _, _ := auth.ResetToken.New()
	verify, _, _ := auth.VerifyToken.New()
	var msgs []string
	for _, bad := range []string{madeUp, verify, "qp_garbled", apitest.Mangle(token)} {
		msgs = append(msgs, apitest.RequireCode(t, resetPassword(s, bad, "a new password 1"), connect.CodeNotFound).Message())
	}
	require.Equal(t, []string{msgs[0], msgs[0], msgs[0], msgs[0]}, msgs)

	require.NoError(t, resetPassword(s, token, "a new password 1"))
	require.Equal(t, msgs[0], apitest.RequireCode(t, resetPassword(s, token, "a new password 2"), connect.CodeNotFound).Message(), "once")

	// Every session ended: refresh tokens at once, access tokens on the
	// next call, on both replicas.
	for _, sess := range []*quartersv1.Session{a.Owner, other} {
		_, err := refresh(s, sess.GetRefreshToken())
		apitest.RequireCode(t, err, connect.CodeUnauthenticated)
		apitest.RequireCode(t, apitest.ListProjects(s.AsUser(sess)), connect.CodeUnauthenticated)
		require.Eventually(t, func() bool {
			return connect.CodeOf(apitest.ListProjects(s2.AsUser(sess))) == connect.CodeUnauthenticated
		}, time.Second, 10*time.Millisecond, "replica 2 still accepts an access token from before the reset")
	}
	_, err = apitest.SignIn(s, a.OwnerEmail, servertest.OwnerPassword, a.Slug)
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)
	apitest.MustSignIn(t, s2, a.OwnerEmail, "a new password 1", a.Slug)

	// Expired: refused like a used one.
	late := resetMail(t, s, a.OwnerEmail)
	s.Exec(t, a.ID, `update email_tokens set expire_time = now() - interval '1 second' where used_time is null`)
	require.Equal(t, msgs[0], apitest.RequireCode(t, resetPassword(s, late, "a new password 3"), connect.CodeNotFound).Message())
	apitest.MustSignIn(t, s, a.OwnerEmail, "a new password 1", a.Slug)

	// A reset link lives an hour.
	live := resetMail(t, s, a.OwnerEmail)
	require.Equal(t, 1, apitest.OwnerCount(t, s, `select count(*) from email_tokens where used_time is null and expire_time > now()
		and expire_time between create_time + interval '59 minutes' and create_time + interval '61 minutes'`))
	require.NoError(t, resetPassword(s, live, "a new password 4"))
}

// TestPasswordResetCap: at most 5 reset links are live per account;
// requests past that answer the same and send nothing.
func TestPasswordResetCap(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	for range 8 {
		requestReset(t, s, a.OwnerEmail)
	}
	jobsDone(t, s)
	resets := 0
	for _, m := range s.Mailbox.Sent(a.OwnerEmail) {
		if m.Subject == notify.SubjectReset {
			resets++
		}
	}
	require.Equal(t, notify.MaxLiveTokens, resets)
}

// TestVerifyEmail: a new account signs in only once its email is verified
// (saying so only to someone with the password); the link works once;
// another can be requested, with the same answer for any email.
func TestVerifyEmail(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	email := "fresh@verify.example"
	_, err := s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{
		Slug: "verify", Name: "Verify", OwnerEmail: email, OwnerPassword: servertest.OwnerPassword,
	}))
	require.NoError(t, err)
	msg, first := s.Mailbox.Wait(t, email, notify.SubjectVerify)
	require.Regexp(t, `^qv_`, first)
	require.Contains(t, msg.Text, servertest.LinkURL+"/verify-email?token="+first)
	require.Contains(t, msg.Text, `"Verify" (verify)`)
	require.Equal(t, 1, apitest.OwnerCount(t, s, `select count(*) from email_tokens where purpose = 'verify_email'
		and expire_time between create_time + interval '1439 minutes' and create_time + interval '1441 minutes'`), "a verification link lives a day")

	_, err = apitest.SignIn(s, email, "not the password", "verify")
	wrong := apitest.RequireCode(t, err, connect.CodeUnauthenticated)
	_, err = apitest.SignIn(s, "nobody@verify.example", servertest.OwnerPassword, "verify")
	require.Equal(t, wrong.Message(), apitest.RequireCode(t, err, connect.CodeUnauthenticated).Message())
	_, err = apitest.SignIn(s, email, servertest.OwnerPassword, "verify")
	cerr := apitest.RequireCode(t, err, connect.CodeFailedPrecondition)
	require.Equal(t, "EMAIL_NOT_VERIFIED", apitest.ErrorInfo(t, cerr).GetReason())

	// Another link on request; both are live until one is used.
	_, err = anonAuth(s).Auth.RequestEmailVerification(ctx, req(&quartersv1.RequestEmailVerificationRequest{Email: email}))
	require.NoError(t, err)
	_, second := s.Mailbox.Wait(t, email, notify.SubjectVerify)
	require.NotEqual(t, first, second)
	verifyEmail := func(token string) error {
		_, err := anonAuth(s).Auth.VerifyEmail(ctx, req(&quartersv1.VerifyEmailRequest{Token: token}))
		return err
	}
	reset, _, _ := auth.ResetToken.New()
	used := apitest.RequireCode(t, verifyEmail(reset), connect.CodeNotFound).Message()
	require.NoError(t, verifyEmail(second))
	require.Equal(t, used, apitest.RequireCode(t, verifyEmail(second), connect.CodeNotFound).Message(), "once")
	sess := apitest.MustSignIn(t, s, email, servertest.OwnerPassword, "verify")
	require.True(t, sess.GetUser().GetEmailVerified())
	require.NoError(t, verifyEmail(first), "the earlier link is still good (and changes nothing)")

	// A verified account gets no more links; an unknown email none; the
	// answers are the same.
	for _, e := range []string{email, "nobody@verify.example"} {
		_, err = anonAuth(s).Auth.RequestEmailVerification(ctx, req(&quartersv1.RequestEmailVerificationRequest{Email: e}))
		require.NoError(t, err)
	}
	jobsDone(t, s)
	require.Len(t, s.Mailbox.Sent(email), 2)
	require.Empty(t, s.Mailbox.Sent("nobody@verify.example"))
}

// TestChangePassword: the signed-in user changes their password with the
// current one; every other session ends (refresh and access tokens), the
// caller's access token too, and the fresh session returned goes on.
func TestChangePassword(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	b := apitest.SignUpRoomy(t, s)
	inB, err := apitest.AcceptInvitation(s, apitest.Invite(t, b, a.OwnerEmail, quartersv1.Role_ROLE_MEMBER), servertest.OwnerPassword)
	require.NoError(t, err) // the same person, in b
	elsewhere := apitest.MustSignIn(t, s, a.OwnerEmail, servertest.OwnerPassword, a.Slug)
	me := s.AsUser(a.Owner)
	change := func(cur, next string) (*quartersv1.Session, error) {
		resp, err := me.Auth.ChangePassword(ctx, req(&quartersv1.ChangePasswordRequest{CurrentPassword: cur, NewPassword: next}))
		if err != nil {
			return nil, err
		}
		return resp.Msg.GetSession(), nil
	}

	_, err = change("not my password", "a changed password")
	require.Equal(t, "current_password is wrong", apitest.RequireCode(t, err, connect.CodeUnauthenticated).Message())
	_, err = change(servertest.OwnerPassword, "short")
	require.Equal(t, []string{"new_password"}, apitest.Violations(t, apitest.RequireCode(t, err, connect.CodeInvalidArgument)))
	require.NoError(t, apitest.ListProjects(me), "refusals end nothing")

	fresh, err := change(servertest.OwnerPassword, "a changed password")
	require.NoError(t, err)
	require.Equal(t, a.ID, fresh.GetTenantId())
	require.Equal(t, quartersv1.Role_ROLE_OWNER, fresh.GetRole())
	require.NoError(t, apitest.ListProjects(s.AsUser(fresh)))
	_, err = refresh(s, fresh.GetRefreshToken())
	require.NoError(t, err, "the fresh session refreshes")

	for name, sess := range map[string]*quartersv1.Session{"caller's": a.Owner, "other device": elsewhere, "other tenant": inB} {
		_, err := refresh(s, sess.GetRefreshToken())
		apitest.RequireCode(t, err, connect.CodeUnauthenticated)
		require.Equal(t, connect.CodeUnauthenticated, connect.CodeOf(apitest.ListProjects(s.AsUser(sess))), name)
	}
	_, err = apitest.SignIn(s, a.OwnerEmail, servertest.OwnerPassword, a.Slug)
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)
	apitest.MustSignIn(t, s, a.OwnerEmail, "a changed password", b.Slug)

	// An API key is no person: the access rule refuses it.
	_, err = a.Auth.ChangePassword(ctx, req(&quartersv1.ChangePasswordRequest{CurrentPassword: "a changed password", NewPassword: "by an api key"}))
	apitest.RequireCode(t, err, connect.CodePermissionDenied)
}

// TestEmailTokenRace: a token used by many callers at once works once.
func TestEmailTokenRace(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := apitest.SignUpRoomy(t, s)
	reset := resetMail(t, s, a.OwnerEmail)
	inv := apitest.Invite(t, a, "racer@example.com", quartersv1.Role_ROLE_MEMBER)
	_, err := s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{
		Slug: "race-verify", Name: "Race", OwnerEmail: "verifier@example.com", OwnerPassword: servertest.OwnerPassword,
	}))
	require.NoError(t, err)
	_, verify := s.Mailbox.Wait(t, "verifier@example.com", notify.SubjectVerify)

	race := func(name string, use func(i int) error) {
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins int
		)
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := use(i); err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if c := connect.CodeOf(err); c != connect.CodeNotFound && c != connect.CodeAborted {
					t.Errorf("%s: %v", name, err)
				}
			}()
		}
		wg.Wait()
		require.Equal(t, 1, wins, name)
	}
	race("reset", func(i int) error { return resetPassword(s, reset, fmt.Sprintf("racing password %d", i)) })
	race("verify", func(int) error {
		_, err := anonAuth(s).Auth.VerifyEmail(ctx, req(&quartersv1.VerifyEmailRequest{Token: verify}))
		return err
	})
	race("invitation", func(int) error {
		_, err := apitest.AcceptInvitation(s, inv, "racing password")
		return err
	})
	require.Equal(t, 1, apitest.OwnerCount(t, s, `select count(*) from memberships m join users u on u.id = m.user_id
		where m.tenant_id = $1 and u.email = 'racer@example.com'`, a.ID))
}

// TestEmailTokensGrantNothingElse: a mailed token does only its own job:
// no reset or verification token is a credential, an invitation, or the
// other kind; an invitation signs in to its own tenant only, whatever
// tenant the call names.
func TestEmailTokensGrantNothingElse(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := apitest.SignUpRoomy(t, s)
	b := apitest.SignUpRoomy(t, s)
	reset := resetMail(t, s, b.OwnerEmail)
	inv := apitest.Invite(t, a, "guest@example.com", quartersv1.Role_ROLE_MEMBER)

	// As bearer credentials, for either tenant: refused.
	for _, tok := range []string{reset, inv} {
		apitest.RequireCode(t, apitest.ListProjects(s.As(b.ID, b.Slug, tok)), connect.CodeUnauthenticated)
	}
	// As the other kinds of token: the invalid-token answers.
	_, err := apitest.AcceptInvitation(s, reset, apitest.MemberPassword)
	require.Equal(t, apitest.UsedInvitation, apitest.RequireCode(t, err, connect.CodeNotFound).Message())
	apitest.RequireCode(t, resetPassword(s, inv, "a new password 1"), connect.CodeNotFound)
	_, err = anonAuth(s).Auth.VerifyEmail(ctx, req(&quartersv1.VerifyEmailRequest{Token: reset}))
	apitest.RequireCode(t, err, connect.CodeNotFound)

	// An invitation of a, called at b's subdomain and with b's header:
	// a's membership, nothing in b.
	accepted := 0
	for _, c := range []*servertest.Tenant{
		s.AsAt(s.SubdomainURL(b.Slug), "", "", ""),
		s.As("", "", "", connect.WithInterceptors(servertest.Header("X-Tenant-ID", b.Slug))),
	} {
		resp, err := c.Members.AcceptInvitation(ctx, req(&quartersv1.AcceptInvitationRequest{Token: inv, Password: apitest.MemberPassword}))
		if err == nil {
			require.Equal(t, a.ID, resp.Msg.GetSession().GetTenantId())
			accepted++
			continue
		}
		require.Equal(t, apitest.UsedInvitation, apitest.RequireCode(t, err, connect.CodeNotFound).Message())
	}
	require.Equal(t, 1, accepted, "the invitation was accepted once")
	require.NotContains(t, apitest.Members(t, b), "guest@example.com")
	require.Contains(t, apitest.Members(t, a), "guest@example.com")

	// The reset is b's owner's, and still works after all this.
	require.NoError(t, resetPassword(s, reset, "b's new password"))
	apitest.MustSignIn(t, s, b.OwnerEmail, "b's new password", b.Slug)
}
