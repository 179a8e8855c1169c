package sdktest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/notify"
	"github.com/quarters-dev/quarters/internal/servertest"
	quarters "github.com/quarters-dev/quarters/sdk/go"
)

const ownerPassword = "correct horse battery"

// owner is a tenant signed up through the SDK with an owner password.
type owner struct {
	id, slug, email string
	session         *quartersv1.Session
}

// signUpOwner signs up a tenant whose owner, email, has ownerPassword (an
// existing user keeps theirs, which must be ownerPassword; a new one
// verifies the email with the mailed link), signs the owner in, and lifts
// the tenant's rate limit so that bursts of calls are not refused.
func signUpOwner(t *testing.T, s *servertest.Server, email string) owner {
	t.Helper()
	slug := fmt.Sprintf("sess-%d-%d", slugs.Add(1), time.Now().UnixNano()%1e6)
	existing := email != ""
	if !existing {
		email = "owner@" + slug + ".example"
	}
	resp, err := quarters.NewClient(s.URL).Tenants.CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{
		Slug: slug, Name: "Sessions " + slug, OwnerEmail: email, OwnerPassword: ownerPassword,
	}))
	require.NoError(t, err)
	require.Nil(t, resp.Msg.GetSession(), "sign-up signs nobody in")
	if !existing {
		_, err := quarters.SignIn(ctx, s.URL, email, ownerPassword, slug)
		require.True(t, quarters.EmailNotVerified(err), "%v", err)
		s.VerifyEmail(t, email)
	}
	sess, err := quarters.SignIn(ctx, s.URL, email, ownerPassword, slug)
	require.NoError(t, err)
	require.NotEmpty(t, sess.GetAccessToken())
	require.True(t, strings.HasPrefix(sess.GetRefreshToken(), "qr_"), sess.GetRefreshToken())
	require.Equal(t, slug, sess.GetTenantSlug())
	require.Equal(t, quartersv1.Role_ROLE_OWNER, sess.GetRole())
	s.Unthrottle(t, resp.Msg.GetTenant().GetId())
	return owner{id: resp.Msg.GetTenant().GetId(), slug: slug, email: email, session: sess}
}

// procedures is an http.RoundTripper that counts requests per procedure
// (URL path).
type procedures struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func (p *procedures) RoundTrip(r *http.Request) (*http.Response, error) {
	p.mu.Lock()
	p.n[r.URL.Path]++
	p.mu.Unlock()
	return p.base.RoundTrip(r)
}

func (p *procedures) count(procedure string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[procedure]
}

func (p *procedures) total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, v := range p.n {
		n += v
	}
	return n
}

func countProcedures(s *servertest.Server) (*procedures, quarters.Option) {
	p := &procedures{base: s.HTTP.Transport, n: map[string]int{}}
	return p, quarters.WithHTTPClient(&http.Client{Transport: p})
}

// refreshes is what a procedures counter reports for RefreshToken.
const refreshes = quartersv1connect.AuthServiceRefreshTokenProcedure

// recorder is an OnRefreshFunc that keeps every session it is given.
type recorder struct {
	mu       sync.Mutex
	sessions []*quartersv1.Session
}

func (r *recorder) save(s *quartersv1.Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sessions = append(r.sessions, proto.CloneOf(s))
}

func (r *recorder) all() []*quartersv1.Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*quartersv1.Session(nil), r.sessions...)
}

// expiring returns a copy of sess whose access token seems to expire at
// t, as a session saved long ago would (the server still accepts the
// token: only the source is fooled).
func expiring(sess *quartersv1.Session, t time.Time) *quartersv1.Session {
	c := proto.CloneOf(sess)
	c.AccessTokenExpireTime = timestamppb.New(t)
	return c
}

func currentUser(c *quarters.Client) (*quartersv1.GetCurrentUserResponse, error) {
	resp, err := c.Members.GetCurrentUser(ctx, req(&quartersv1.GetCurrentUserRequest{}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// TestSignIn: the owner signs in with email and password, by slug or by
// X-Tenant-ID, and the session's token authenticates calls.
func TestSignIn(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	o := signUpOwner(t, s, "")

	sess, err := quarters.SignIn(ctx, s.URL, o.email, ownerPassword, o.slug)
	require.NoError(t, err)
	require.Equal(t, o.id, sess.GetTenantId())
	require.Equal(t, o.email, sess.GetUser().GetEmail())
	require.Equal(t, quartersv1.Role_ROLE_OWNER, sess.GetRole())
	require.NotEqual(t, o.session.GetRefreshToken(), sess.GetRefreshToken())
	require.WithinDuration(t, time.Now().Add(15*time.Minute), sess.GetAccessTokenExpireTime().AsTime(), time.Minute)

	// The tenant may come from WithTenant's header instead; a credential
	// option is ignored.
	byHeader, err := quarters.SignIn(ctx, s.URL, o.email, ownerPassword, "", quarters.WithTenant(o.id), quarters.WithAPIKey("qk_nope"))
	require.NoError(t, err)
	require.Equal(t, o.slug, byHeader.GetTenantSlug())

	_, err = quarters.SignIn(ctx, s.URL, o.email, "wrong password", o.slug)
	require.True(t, quarters.IsUnauthenticated(err), "%v", err)
	_, err = quarters.SignIn(ctx, s.URL, "nobody@example.com", ownerPassword, o.slug)
	require.True(t, quarters.IsUnauthenticated(err), "%v", err)

	procs, viaCounter := countProcedures(s)
	src := quarters.NewSessionTokenSource(s.URL, sess, &quarters.SessionOpts{ClientOptions: []quarters.Option{viaCounter}})
	c := quarters.NewClient(s.URL, quarters.WithSession(src), viaCounter)
	me, err := currentUser(c)
	require.NoError(t, err)
	require.Equal(t, o.email, me.GetUser().GetEmail())
	require.Equal(t, o.id, me.GetTenantId())
	require.Equal(t, quartersv1.Role_ROLE_OWNER, me.GetRole())
	_, err = c.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: "Signed in"}))
	require.NoError(t, err)
	members, err := c.Members.ListMembers(ctx, req(&quartersv1.ListMembersRequest{}))
	require.NoError(t, err)
	require.Len(t, members.Msg.GetMembers(), 1)
	require.Equal(t, o.email, members.Msg.GetMembers()[0].GetUser().GetEmail())
	// A fresh token is not refreshed.
	require.Zero(t, procs.count(refreshes))
	require.Equal(t, sess.GetAccessToken(), src.Session().GetAccessToken())

	// WithTokenSource(src.Token) serves as well.
	_, err = currentUser(quarters.NewClient(s.URL, quarters.WithTokenSource(src.Token)))
	require.NoError(t, err)
}

// TestSessionRefreshOnce: 20 concurrent calls on an expired access token
// share one refresh; the rotated refresh token keeps the session alive,
// and OnRefreshFunc sees the new session. Presenting the spent refresh
// token afterwards ends the session, which the source then reports as
// ErrSessionEnded without calling the server.
func TestSessionRefreshOnce(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	o := signUpOwner(t, s, "")
	procs, viaCounter := countProcedures(s)
	var saved recorder
	src := quarters.NewSessionTokenSource(s.URL, expiring(o.session, time.Now().Add(-time.Second)),
		&quarters.SessionOpts{OnRefreshFunc: saved.save, ClientOptions: []quarters.Option{viaCounter}})
	c := quarters.NewClient(s.URL, quarters.WithSession(src), viaCounter)

	const n = 20
	start := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			_, err := c.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, 1, procs.count(refreshes))
	require.Equal(t, n, procs.count(quartersv1connect.ProjectServiceListProjectsProcedure))

	got := src.Session()
	require.Len(t, saved.all(), 1)
	require.True(t, proto.Equal(got, saved.all()[0]))
	require.NotEqual(t, o.session.GetAccessToken(), got.GetAccessToken())
	require.NotEqual(t, o.session.GetRefreshToken(), got.GetRefreshToken())
	require.True(t, got.GetAccessTokenExpireTime().AsTime().After(time.Now().Add(10*time.Minute)))
	require.Equal(t, o.id, got.GetTenantId())

	// The session is still good: its refresh token was presented once. A
	// second source, started from the saved session, refreshes it again.
	again := quarters.NewSessionTokenSource(s.URL, expiring(saved.all()[0], time.Time{}), nil)
	tok, err := again.Token(ctx)
	require.NoError(t, err)
	require.NotEqual(t, got.GetAccessToken(), tok)
	me, err := currentUser(quarters.NewClient(s.URL, quarters.WithSession(again)))
	require.NoError(t, err)
	require.Equal(t, o.email, me.GetUser().GetEmail())

	// src's refresh token is now spent. When it is presented again, the
	// server ends the whole session, and src says so.
	_, err = src.Token(ctx)
	require.NoError(t, err) // still fresh: no refresh needed
	forced := quarters.NewSessionTokenSource(s.URL, expiring(got, time.Time{}), nil)
	_, err = forced.Token(ctx)
	require.ErrorIs(t, err, quarters.ErrSessionEnded)
	require.True(t, quarters.IsUnauthenticated(err), "%v", err)
	_, err = again.Token(ctx) // again's access token still works (until it expires)
	require.NoError(t, err)
	_, err = quarters.NewSessionTokenSource(s.URL, expiring(again.Session(), time.Time{}), nil).Token(ctx)
	require.ErrorIs(t, err, quarters.ErrSessionEnded, "reuse revoked the whole session")
	before := procs.total()
	_, err = forced.Token(ctx)
	require.ErrorIs(t, err, quarters.ErrSessionEnded)
	require.Equal(t, before, procs.total())
}

// TestSessionRefreshBefore: a token that expires within RefreshBefore is
// refreshed; one that does not, is not.
func TestSessionRefreshBefore(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	o := signUpOwner(t, s, "")
	procs, viaCounter := countProcedures(s)
	opts := &quarters.SessionOpts{ClientOptions: []quarters.Option{viaCounter}}

	for _, c := range []struct {
		name      string
		expire    time.Duration // from now
		before    time.Duration
		refreshed bool
	}{
		{"fresh", 10 * time.Minute, 0, false},
		{"within the default minute", 30 * time.Second, 0, true},
		{"within RefreshBefore", 10 * time.Minute, 11 * time.Minute, true},
		{"outside RefreshBefore", 30 * time.Second, 10 * time.Second, false},
	} {
		sess, err := quarters.SignIn(ctx, s.URL, o.email, ownerPassword, o.slug)
		require.NoError(t, err)
		sess = expiring(sess, time.Now().Add(c.expire))
		opts.RefreshBefore = c.before
		n := procs.count(refreshes)
		src := quarters.NewSessionTokenSource(s.URL, sess, opts)
		tok, err := src.Token(ctx)
		require.NoError(t, err, c.name)
		require.Equal(t, c.refreshed, tok != sess.GetAccessToken(), c.name)
		require.Equal(t, n+map[bool]int{false: 0, true: 1}[c.refreshed], procs.count(refreshes), c.name)
	}
}

// TestSessionRefreshOutlivesCaller: a caller that gives up does not cancel
// the refresh it started, whose rotated refresh token would otherwise be
// lost.
func TestSessionRefreshOutlivesCaller(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	o := signUpOwner(t, s, "")
	procs, viaCounter := countProcedures(s)
	var saved recorder
	src := quarters.NewSessionTokenSource(s.URL, expiring(o.session, time.Time{}),
		&quarters.SessionOpts{OnRefreshFunc: saved.save, ClientOptions: []quarters.Option{viaCounter}})

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err := src.Token(cancelled)
	require.ErrorIs(t, err, context.Canceled)
	tok, err := src.Token(ctx)
	require.NoError(t, err)
	require.NotEqual(t, o.session.GetAccessToken(), tok)
	require.Equal(t, 1, procs.count(refreshes))
	require.Len(t, saved.all(), 1)
	_, err = currentUser(quarters.NewClient(s.URL, quarters.WithSession(src)))
	require.NoError(t, err)
}

// TestSessionRejectedToken: when the member's role changes, the server
// refuses their access token on its next use; WithSession refreshes (once,
// for all the calls refused) and the calls succeed with the new role. A
// removed member's session ends.
func TestSessionRejectedToken(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	o := signUpOwner(t, s, "")
	ownerClient := quarters.NewClient(s.URL, quarters.WithSession(quarters.NewSessionTokenSource(s.URL, o.session, nil)))
	inv, err := ownerClient.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{
		Email: "ann@" + o.slug + ".example", Role: quartersv1.Role_ROLE_MEMBER,
	}))
	require.NoError(t, err)
	require.Empty(t, inv.Msg.GetToken(), "the token is mailed to the invitee only")
	_, token := s.Mailbox.Wait(t, "ann@"+o.slug+".example", notify.SubjectInvitation)
	accepted, err := quarters.NewClient(s.URL).Members.AcceptInvitation(ctx, req(&quartersv1.AcceptInvitationRequest{
		Token: token, Password: "ann's password",
	}))
	require.NoError(t, err)
	ann := accepted.Msg.GetSession()
	require.Equal(t, quartersv1.Role_ROLE_MEMBER, ann.GetRole())

	procs, viaCounter := countProcedures(s)
	var saved recorder
	src := quarters.NewSessionTokenSource(s.URL, ann, &quarters.SessionOpts{OnRefreshFunc: saved.save, ClientOptions: []quarters.Option{viaCounter}})
	c := quarters.NewClient(s.URL, quarters.WithSession(src), viaCounter)
	_, err = c.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: "by a member"}))
	require.NoError(t, err)
	_, err = c.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "bob@" + o.slug + ".example", Role: quartersv1.Role_ROLE_MEMBER}))
	require.True(t, quarters.IsPermissionDenied(err), "a member cannot invite: %v", err)

	_, err = ownerClient.Members.UpdateMemberRole(ctx, req(&quartersv1.UpdateMemberRoleRequest{UserId: ann.GetUser().GetId(), Role: quartersv1.Role_ROLE_ADMIN}))
	require.NoError(t, err)
	// The old token is refused now, though it has not expired.
	_, err = currentUser(quarters.NewClient(s.URL, quarters.WithAPIKey(ann.GetAccessToken())))
	require.True(t, quarters.IsUnauthenticated(err), "%v", err)

	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			me, err := currentUser(c)
			if err == nil && me.GetRole() != quartersv1.Role_ROLE_ADMIN {
				err = fmt.Errorf("role %v", me.GetRole())
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, 1, procs.count(refreshes))
	require.Len(t, saved.all(), 1)
	require.Equal(t, quartersv1.Role_ROLE_ADMIN, saved.all()[0].GetRole())
	_, err = c.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "bob@" + o.slug + ".example", Role: quartersv1.Role_ROLE_MEMBER}))
	require.NoError(t, err, "an admin can invite")

	// Removed: the refused token cannot be refreshed either, and the
	// session is over.
	_, err = ownerClient.Members.RemoveMember(ctx, req(&quartersv1.RemoveMemberRequest{UserId: ann.GetUser().GetId()}))
	require.NoError(t, err)
	_, err = c.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.ErrorIs(t, err, quarters.ErrSessionEnded)
	require.True(t, quarters.IsUnauthenticated(err), "%v", err)
	require.Equal(t, 2, procs.count(refreshes))
	before := procs.total()
	_, err = c.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.ErrorIs(t, err, quarters.ErrSessionEnded)
	require.Equal(t, before, procs.total(), "an ended session calls nobody")
}

// TestSessionSwitchTenant: a user in two tenants switches the source from
// one to the other; the calls that follow act in the second, the first
// session is ended, and a tenant the user is not in is NOT_FOUND.
func TestSessionSwitchTenant(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := signUpOwner(t, s, "")
	b := signUpOwner(t, s, a.email) // the same person owns b
	other := signUpOwner(t, s, "")
	var saved recorder
	src := quarters.NewSessionTokenSource(s.URL, a.session, &quarters.SessionOpts{OnRefreshFunc: saved.save})
	c := quarters.NewClient(s.URL, quarters.WithSession(src))

	me, err := currentUser(c)
	require.NoError(t, err)
	require.Equal(t, a.id, me.GetTenantId())
	var slugsSeen []string
	for _, m := range me.GetTenants() {
		slugsSeen = append(slugsSeen, m.GetTenantSlug())
	}
	require.ElementsMatch(t, []string{a.slug, b.slug}, slugsSeen)

	require.NoError(t, src.SwitchTenant(ctx, b.slug))
	tn, err := c.Tenants.GetTenant(ctx, req(&quartersv1.GetTenantRequest{}))
	require.NoError(t, err)
	require.Equal(t, b.id, tn.Msg.GetTenant().GetId())
	require.Equal(t, b.slug, src.Session().GetTenantSlug())
	require.Len(t, saved.all(), 1)
	require.Equal(t, b.id, saved.all()[0].GetTenantId())

	// The session in a was ended: its refresh token no longer works.
	_, err = quarters.NewClient(s.URL).Auth.RefreshToken(ctx, req(&quartersv1.RefreshTokenRequest{RefreshToken: a.session.GetRefreshToken()}))
	require.True(t, quarters.IsUnauthenticated(err), "%v", err)

	// Not a member of other: NOT_FOUND, and the session stays in b.
	err = src.SwitchTenant(ctx, other.slug)
	require.True(t, quarters.IsNotFound(err), "%v", err)
	require.Equal(t, b.id, src.Session().GetTenantId())
	require.Len(t, saved.all(), 1)

	// And back, by id.
	require.NoError(t, src.SwitchTenant(ctx, a.id))
	tn, err = c.Tenants.GetTenant(ctx, req(&quartersv1.GetTenantRequest{}))
	require.NoError(t, err)
	require.Equal(t, a.id, tn.Msg.GetTenant().GetId())
}

// TestSessionSignOut: after SignOut the refresh token is revoked and the
// source refuses calls with ErrSessionEnded; signing out twice is fine.
func TestSessionSignOut(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	o := signUpOwner(t, s, "")
	procs, viaCounter := countProcedures(s)
	src := quarters.NewSessionTokenSource(s.URL, o.session, nil)
	c := quarters.NewClient(s.URL, quarters.WithSession(src), viaCounter)
	_, err := currentUser(c)
	require.NoError(t, err)

	require.NoError(t, src.SignOut(ctx))
	before := procs.total()
	_, err = currentUser(c)
	require.ErrorIs(t, err, quarters.ErrSessionEnded)
	require.True(t, quarters.IsUnauthenticated(err))
	require.Equal(t, before, procs.total())
	require.NoError(t, src.SignOut(ctx))
	err = src.SwitchTenant(ctx, o.slug)
	require.ErrorIs(t, err, quarters.ErrSessionEnded)

	_, err = quarters.NewClient(s.URL).Auth.RefreshToken(ctx, req(&quartersv1.RefreshTokenRequest{RefreshToken: o.session.GetRefreshToken()}))
	require.True(t, quarters.IsUnauthenticated(err), "%v", err)

	// A session without a refresh token cannot go on.
	_, err = quarters.NewSessionTokenSource(s.URL, nil, nil).Token(ctx)
	require.ErrorIs(t, err, quarters.ErrSessionEnded)
	var cerr *connect.Error
	require.True(t, errors.As(err, &cerr))
}

// TestSessionChangePassword: ChangePassword swaps the source's session for
// the fresh one the server returns, so calls go on; the user's other
// sessions end; a wrong current password changes nothing.
func TestSessionChangePassword(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	o := signUpOwner(t, s, "")
	other, err := quarters.SignIn(ctx, s.URL, o.email, ownerPassword, o.slug)
	require.NoError(t, err)
	var saved recorder
	src := quarters.NewSessionTokenSource(s.URL, o.session, &quarters.SessionOpts{OnRefreshFunc: saved.save})
	err = src.ChangePassword(ctx, "not the password", "a changed password")
	require.True(t, quarters.IsUnauthenticated(err), "%v", err)
	require.Equal(t, o.session.GetRefreshToken(), src.Session().GetRefreshToken())

	require.NoError(t, src.ChangePassword(ctx, ownerPassword, "a changed password"))
	require.NotEqual(t, o.session.GetRefreshToken(), src.Session().GetRefreshToken())
	require.Len(t, saved.all(), 1)
	me, err := currentUser(quarters.NewClient(s.URL, quarters.WithSession(src)))
	require.NoError(t, err)
	require.Equal(t, o.email, me.GetUser().GetEmail())
	_, err = quarters.NewSessionTokenSource(s.URL, expiring(other, time.Time{}), nil).Token(ctx)
	require.ErrorIs(t, err, quarters.ErrSessionEnded)
	_, err = quarters.SignIn(ctx, s.URL, o.email, "a changed password", o.slug)
	require.NoError(t, err)
}
