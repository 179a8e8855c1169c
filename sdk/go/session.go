package quarters

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
)

// ErrSessionEnded is wrapped by the UNAUTHENTICATED errors of a
// SessionTokenSource whose session cannot go on: its refresh token was
// refused (expired, revoked, already used, or the member was removed), it
// has none, or it was signed out. Only signing in again helps:
//
//	if errors.Is(err, quarters.ErrSessionEnded) { /* show the sign-in page */ }
var ErrSessionEnded = errors.New("session ended: sign in again")

// DefaultRefreshBefore is how long before its access token expires a
// SessionTokenSource refreshes the session, unless SessionOpts says
// otherwise. Access tokens live 15 minutes; a minute's margin absorbs
// modest differences between the client's and the server's clocks.
const DefaultRefreshBefore = time.Minute

// refreshTimeout bounds one RefreshToken call, which no caller's context
// cancels (see SessionTokenSource.Token).
const refreshTimeout = 30 * time.Second

// SignIn signs a user in to tenant (its slug or id) with email and
// password, and returns the session: hand it to NewSessionTokenSource. An
// empty tenant leaves the choice to WithTenant's header or baseURL's
// subdomain. opts configure the client that signs in (WithHTTPClient,
// WithProtocol, WithUserAgent, WithRetry, WithTenant); credential options
// are ignored, since signing in needs none.
//
// Returns UNAUTHENTICATED for an unknown email, a wrong password and a
// tenant the user does not belong to alike, and PERMISSION_DENIED
// (TenantSuspended) if the tenant is suspended.
func SignIn(ctx context.Context, baseURL, email, password, tenant string, opts ...Option) (*quartersv1.Session, error) {
	c := NewClient(baseURL, slices.Concat(opts, []Option{withoutCredential})...)
	resp, err := c.Auth.SignIn(ctx, connect.NewRequest(&quartersv1.SignInRequest{Email: email, Password: password, Tenant: tenant}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetSession(), nil
}

// withoutCredential drops any credential option given before it.
func withoutCredential(c *config) { c.token, c.session = nil, nil }

// SessionOpts are NewSessionTokenSource's optional settings; nil is fine.
type SessionOpts struct {
	// OnRefreshFunc, when set, is called with every session that replaces
	// the source's: after each refresh, and after SwitchTenant. Persist the
	// session there if it must outlive the process: it holds the only
	// refresh token that still works, since the one it replaced was used
	// up. Calls never overlap and come in the order the sessions were
	// issued; calls waiting for a refresh proceed once it returns, so keep
	// it quick. It must not modify the session.
	OnRefreshFunc func(*quartersv1.Session)
	// RefreshBefore is how long before the access token expires the
	// session is refreshed; zero means DefaultRefreshBefore.
	RefreshBefore time.Duration
	// ClientOptions configure the client that calls RefreshToken,
	// SwitchTenant and SignOut (WithHTTPClient, WithProtocol,
	// WithUserAgent, WithRetry). Credential and tenant options are
	// ignored: these calls carry the session's own.
	ClientOptions []Option
}

// SessionTokenSource keeps a signed-in user's session going: its Token
// method returns the session's access token, first refreshing the session
// (RefreshToken, which also rotates the single-use refresh token) when the
// access token expires within SessionOpts.RefreshBefore. Pass it to a
// Client with WithSession (or WithTokenSource(src.Token)).
//
// It is safe for concurrent use. Refreshes, SwitchTenant and SignOut run one
// at a time: calls that need a new token while a refresh is in flight wait
// for it instead of starting another, so a refresh token is never
// presented twice (which the server treats as theft, ending the session).
// Build one source per session and share it.
type SessionTokenSource struct {
	auth      quartersv1connect.AuthServiceClient // sends no credential of its own
	onRefresh func(*quartersv1.Session)
	before    time.Duration

	mu      sync.Mutex
	session *quartersv1.Session // never modified; replaced whole
	ended   error               // set once the session cannot go on
	change  *change             // the refresh, switch or sign-out in flight
}

// change is a refresh, tenant switch or sign-out in flight. Only one runs
// at a time; others wait for done.
type change struct {
	done    chan struct{}
	refresh bool
	err     error // the outcome, set before done is closed
}

// wait waits for c to finish, or for ctx to end.
func (c *change) wait(ctx context.Context) error {
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// NewSessionTokenSource returns a source that keeps session going against
// the Quarters server at baseURL. session comes from SignIn, AcceptInvitation,
// CreateTenant (with an owner password) or storage; one whose access token
// is missing or expired is refreshed on first use, and one without a
// refresh token cannot go on (Token returns ErrSessionEnded).
func NewSessionTokenSource(baseURL string, session *quartersv1.Session, opts *SessionOpts) *SessionTokenSource {
	if opts == nil {
		opts = &SessionOpts{}
	}
	if session == nil {
		session = &quartersv1.Session{}
	}
	c := NewClient(baseURL, slices.Concat(opts.ClientOptions, []Option{withoutCredential, WithTenant("")})...)
	before := opts.RefreshBefore
	if before <= 0 {
		before = DefaultRefreshBefore
	}
	return &SessionTokenSource{auth: c.Auth, onRefresh: opts.OnRefreshFunc, before: before, session: session}
}

// Session returns a copy of the current session: its tokens, user, tenant
// and role.
func (s *SessionTokenSource) Session() *quartersv1.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return proto.CloneOf(s.session)
}

// Token returns the session's access token, refreshing the session first
// if the token expires within RefreshBefore. It has the signature
// WithTokenSource expects.
//
// A refresh outlives the ctx of the call that started it (up to 30 s): the
// server rotates the refresh token when it answers, so abandoning the
// answer would lose the only refresh token that works. ctx ends only the
// wait.
//
// Returns UNAUTHENTICATED wrapping ErrSessionEnded once the session cannot
// go on. If a refresh fails otherwise (say the server is unreachable), the
// current access token is returned as long as it has not expired, and the
// next call tries again; after that, the refresh's error.
func (s *SessionTokenSource) Token(ctx context.Context) (string, error) {
	var failed *change
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		now := time.Now()
		switch {
		case s.ended != nil:
			return "", s.ended
		case s.session.GetAccessToken() != "" && now.Before(s.expire().Add(-s.before)):
			return s.session.GetAccessToken(), nil
		case failed != nil:
			if s.session.GetAccessToken() != "" && now.Before(s.expire()) {
				return s.session.GetAccessToken(), nil
			}
			return "", failed.err
		}
		c := s.change
		if c == nil {
			if c = s.refreshLocked(ctx); c == nil {
				continue // ended
			}
		}
		s.mu.Unlock()
		err := c.wait(ctx)
		s.mu.Lock()
		if err != nil {
			return "", err
		}
		if c.refresh && c.err != nil {
			failed = c
		}
	}
}

// expire is when the access token expires (the zero time if unknown).
func (s *SessionTokenSource) expire() time.Time {
	if t := s.session.GetAccessTokenExpireTime(); t != nil {
		return t.AsTime()
	}
	return time.Time{}
}

// rejected handles the server's refusal of token, an access token the
// source handed out believing it valid (the member's role has changed
// since it was issued, or the clocks disagree). Unless the session has
// moved on since, it is refreshed: once, however many calls were refused.
// It returns nil when the caller should try again with a new Token.
func (s *SessionTokenSource) rejected(ctx context.Context, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.ended == nil && s.session.GetAccessToken() == token {
		c := s.change
		if c == nil {
			if c = s.refreshLocked(ctx); c == nil {
				break // ended
			}
		}
		s.mu.Unlock()
		err := c.wait(ctx)
		s.mu.Lock()
		if err != nil {
			return err
		}
		if c.refresh && c.err != nil && s.ended == nil {
			return c.err
		}
	}
	return s.ended
}

// refreshLocked starts a refresh and returns it, or ends the session and
// returns nil if it cannot be refreshed. s.mu is held and no change is in
// flight.
func (s *SessionTokenSource) refreshLocked(ctx context.Context) *change {
	rt := s.session.GetRefreshToken()
	if rt == "" {
		s.ended = sessionEnded(errors.New("the session has no refresh token"))
		return nil
	}
	if exp := s.session.GetRefreshTokenExpireTime(); exp != nil && !time.Now().Before(exp.AsTime()) {
		s.ended = sessionEnded(errors.New("the refresh token expired"))
		return nil
	}
	c := &change{done: make(chan struct{}), refresh: true}
	s.change = c
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
	go func() {
		defer cancel()
		resp, err := s.auth.RefreshToken(ctx, connect.NewRequest(&quartersv1.RefreshTokenRequest{RefreshToken: rt}))
		var next *quartersv1.Session
		if err == nil {
			next, err = sessionOf(resp.Msg.GetSession())
		}
		if IsUnauthenticated(err) {
			// The refresh token is spent, revoked or expired, or the user
			// is no longer a member: no later refresh can succeed.
			err = sessionEnded(err)
		}
		s.finish(c, next, err)
	}()
	return c
}

// finish completes c: the session is replaced by next (and OnRefreshFunc
// told) if the change produced one, or ended if err wraps ErrSessionEnded.
// Then the next change may start.
func (s *SessionTokenSource) finish(c *change, next *quartersv1.Session, err error) {
	s.mu.Lock()
	if next != nil {
		s.session = next
	}
	if errors.Is(err, ErrSessionEnded) {
		s.ended = err
	}
	s.mu.Unlock()
	defer func() { // even if OnRefreshFunc panics, or waiters would wait forever
		s.mu.Lock()
		c.err = err
		s.change = nil
		s.mu.Unlock()
		close(c.done)
	}()
	// Still inside the change, so calls of OnRefreshFunc never overlap or
	// come out of order.
	if next != nil && s.onRefresh != nil {
		s.onRefresh(next)
	}
}

// claim waits until no change is in flight and starts one, returning it
// and the session it starts from. It returns ErrSessionEnded's error if the
// session has ended.
func (s *SessionTokenSource) claim(ctx context.Context) (*change, *quartersv1.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.change != nil {
		c := s.change
		s.mu.Unlock()
		err := c.wait(ctx)
		s.mu.Lock()
		if err != nil {
			return nil, nil, err
		}
	}
	if s.ended != nil {
		return nil, nil, s.ended
	}
	s.change = &change{done: make(chan struct{})}
	return s.change, s.session, nil
}

// SwitchTenant replaces the session with a new one in tenant (slug or id),
// another tenant the signed-in user belongs to, and then ends the session
// it replaced (as SignOut would; a failure to end it is ignored, since
// nothing holds its refresh token any more). OnRefreshFunc receives the new
// session. Calls that take a token after SwitchTenant returns act in the
// new tenant; a Client given WithTenant keeps sending its header, which no
// longer agrees (TenantMismatch). To hold sessions in several tenants at
// once, call AuthService.SwitchTenant yourself and build a source for each.
//
// Returns NOT_FOUND if the user does not belong to tenant (or it does not
// exist), and Token's errors; on error the session is unchanged.
func (s *SessionTokenSource) SwitchTenant(ctx context.Context, tenant string) error {
	if _, err := s.Token(ctx); err != nil { // an access token that will not expire mid-call
		return err
	}
	c, old, err := s.claim(ctx)
	if err != nil {
		return err
	}
	req := connect.NewRequest(&quartersv1.SwitchTenantRequest{Tenant: tenant})
	req.Header().Set("Authorization", "Bearer "+old.GetAccessToken())
	resp, err := s.auth.SwitchTenant(ctx, req)
	var next *quartersv1.Session
	if err == nil {
		next, err = sessionOf(resp.Msg.GetSession())
	}
	s.finish(c, next, err)
	if err != nil {
		return err
	}
	_, _ = s.auth.SignOut(ctx, connect.NewRequest(&quartersv1.SignOutRequest{RefreshToken: old.GetRefreshToken()}))
	return nil
}

// ChangePassword replaces the signed-in user's password. The server ends
// every session of the user, this one included, and returns a fresh one,
// which replaces the source's (OnRefreshFunc receives it): calls go on
// with it, while the user's other devices must sign in again.
//
// Returns UNAUTHENTICATED for a wrong current password and
// INVALID_ARGUMENT for a new one outside the length rules (10 to 128
// characters); on error the session is unchanged.
func (s *SessionTokenSource) ChangePassword(ctx context.Context, current, next string) error {
	if _, err := s.Token(ctx); err != nil { // an access token that will not expire mid-call
		return err
	}
	c, old, err := s.claim(ctx)
	if err != nil {
		return err
	}
	req := connect.NewRequest(&quartersv1.ChangePasswordRequest{CurrentPassword: current, NewPassword: next})
	req.Header().Set("Authorization", "Bearer "+old.GetAccessToken())
	resp, err := s.auth.ChangePassword(ctx, req)
	var sess *quartersv1.Session
	if err == nil {
		sess, err = sessionOf(resp.Msg.GetSession())
	}
	s.finish(c, sess, err)
	return err
}

// SignOut ends the session: the server revokes its refresh token (access
// tokens already issued work until they expire, at most 15 minutes), and
// the source then refuses every call with ErrSessionEnded. Signing out an
// ended session does nothing. If the server cannot be reached, the error
// is returned and the session kept, so SignOut can be tried again.
func (s *SessionTokenSource) SignOut(ctx context.Context) error {
	c, cur, err := s.claim(ctx)
	if errors.Is(err, ErrSessionEnded) {
		return nil
	}
	if err != nil {
		return err
	}
	if rt := cur.GetRefreshToken(); rt != "" {
		_, err = s.auth.SignOut(ctx, connect.NewRequest(&quartersv1.SignOutRequest{RefreshToken: rt}))
	}
	if err == nil {
		err = sessionEnded(errors.New("signed out"))
	}
	s.finish(c, nil, err)
	if errors.Is(err, ErrSessionEnded) {
		return nil
	}
	return err
}

// sessionEnded is the error of a session that cannot go on, because of
// cause.
func sessionEnded(cause error) error {
	msg := cause.Error()
	if cerr := new(connect.Error); errors.As(cause, &cerr) {
		msg = cerr.Message()
	}
	return connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w (%s)", ErrSessionEnded, msg))
}

// sessionOf checks that a response carried a session.
func sessionOf(s *quartersv1.Session) (*quartersv1.Session, error) {
	if s.GetAccessToken() == "" || s.GetRefreshToken() == "" {
		return nil, connect.NewError(connect.CodeInternal, errors.New("the server's answer holds no session"))
	}
	return s, nil
}
