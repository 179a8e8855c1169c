package authsvc

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apierr"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/password"
	"github.com/quarters-dev/quarters/internal/session"
	"github.com/quarters-dev/quarters/internal/tenancy"
	"github.com/quarters-dev/quarters/internal/tenant"
)

// errSignIn is the one answer to every failed sign-in: unknown email,
// wrong password, no password set, unknown tenant, or not a member. The
// password is checked (or a decoy hashed) in every case, so the time taken
// does not tell them apart either.
func errSignIn() error {
	return connect.NewError(connect.CodeUnauthenticated, errors.New(
		"sign-in failed: the email or password is wrong, or the account is not a member of this tenant"))
}

// errRefresh is the answer to an unknown, malformed, expired or revoked
// refresh token.
func errRefresh() error {
	return connect.NewError(connect.CodeUnauthenticated, errors.New(
		"refresh token is invalid, expired or revoked: sign in again"))
}

// SignIn checks the email and password, then starts a session in the
// selected tenant.
func (s *Service) SignIn(ctx context.Context, req *connect.Request[quartersv1.SignInRequest]) (*connect.Response[quartersv1.SignInResponse], error) {
	sel := req.Msg.GetTenant()
	if sel == "" {
		sel = tenant.SelectorFromContext(ctx)
	}
	if sel == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New(
			"choose the tenant to sign in to: set tenant (slug or id), send X-Tenant-ID, or call the tenant's subdomain"))
	}
	creds, err := s.checkPassword(ctx, req.Msg.GetEmail(), req.Msg.GetPassword())
	if err != nil {
		return nil, err
	}
	// Only someone with the password gets this far, so saying it reveals
	// nothing to anyone else.
	if !creds.EmailVerified {
		return nil, errEmailNotVerified()
	}
	userID := creds.UserID
	tenantID, err := s.p.DB.TenantResolve(ctx, sel)
	if errors.Is(err, db.ErrNotFound) {
		return nil, errSignIn()
	}
	if err != nil {
		return nil, err
	}
	sess, err := s.start(ctx, tenantID, userID, errSignIn)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.SignInResponse{Session: sess}), nil
}

// checkPassword returns the credentials of the user with email if pw is
// their password, else errSignIn, having spent one password hash's time
// either way.
func (s *Service) checkPassword(ctx context.Context, email, pw string) (db.Credentials, error) {
	creds, err := s.p.DB.UserCredentials(ctx, email)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return creds, err
	}
	if err != nil || creds.PasswordHash == nil {
		_ = password.CheckMissing(pw, s.p.Password)
		return db.Credentials{}, errSignIn()
	}
	switch err := password.Check(pw, *creds.PasswordHash); {
	case errors.Is(err, password.ErrMismatch):
		return db.Credentials{}, errSignIn()
	case err != nil:
		return db.Credentials{}, fmt.Errorf("check password of user %s: %w", creds.UserID, err)
	}
	return creds, nil
}

func errEmailNotVerified() error {
	return apierr.WithReason(connect.CodeFailedPrecondition, quartersv1.ErrorReason_ERROR_REASON_EMAIL_NOT_VERIFIED,
		"the account's email is not verified yet: open the link mailed to it, or ask for a new one with RequestEmailVerification", nil)
}

// start begins a session for userID's membership of tenantID. A user who
// is not a member gets notMember(); a suspended tenant, TENANT_SUSPENDED.
func (s *Service) start(ctx context.Context, tenantID, userID uuid.UUID, notMember func() error) (*quartersv1.Session, error) {
	t, err := s.p.Tenants.GetActive(ctx, tenantID, notMember)
	if err != nil {
		return nil, err
	}
	var sess *quartersv1.Session
	err = s.p.DB.ActAs(ctx, tenantID, func(q *dbsqlc.Queries) error {
		subject, err := loadSubject(ctx, q, t, userID, notMember)
		if err != nil {
			return err
		}
		sess, err = s.p.Sessions.Start(ctx, q, subject)
		return err
	})
	return sess, err
}

// loadSubject reads the user's membership of t (notMember() if none) and
// the user, in q's transaction acting for t.
func loadSubject(ctx context.Context, q *dbsqlc.Queries, t tenancy.Tenant, userID uuid.UUID, notMember func() error) (session.Subject, error) {
	m, err := q.MembershipGet(ctx, dbsqlc.MembershipGetParams{TenantID: t.ID, UserID: userID})
	if errors.Is(err, db.ErrNotFound) {
		return session.Subject{}, notMember()
	}
	if err != nil {
		return session.Subject{}, fmt.Errorf("get membership: %w", err)
	}
	u, err := q.UserGet(ctx, userID)
	if err != nil {
		return session.Subject{}, fmt.Errorf("get user: %w", err)
	}
	return session.Subject{TenantSlug: t.Slug, User: u, Membership: m}, nil
}

// RefreshToken exchanges a refresh token for the session's next tokens,
// with the member's current role. A token used twice ends its session.
func (s *Service) RefreshToken(ctx context.Context, req *connect.Request[quartersv1.RefreshTokenRequest]) (*connect.Response[quartersv1.RefreshTokenResponse], error) {
	hash, err := auth.RefreshToken.Parse(req.Msg.GetRefreshToken())
	if err != nil {
		return nil, errRefresh()
	}
	tenantID, err := s.p.DB.RefreshTokenTenant(ctx, hash)
	if errors.Is(err, db.ErrNotFound) {
		return nil, errRefresh()
	}
	if err != nil {
		return nil, err
	}
	t, err := s.p.Tenants.GetActive(ctx, tenantID, errRefresh)
	if err != nil {
		return nil, err
	}
	var (
		sess   *quartersv1.Session
		reused dbsqlc.RefreshToken
	)
	err = s.p.DB.ActAs(ctx, tenantID, func(q *dbsqlc.Queries) error {
		rt, err := session.UseRefreshToken(ctx, q, tenantID, hash)
		if errors.Is(err, session.ErrRefreshReused) {
			// Commit the family's revocation and the version's move; the
			// call fails below.
			reused = rt
			return nil
		}
		if errors.Is(err, session.ErrRefreshInvalid) {
			return errRefresh()
		}
		if err != nil {
			return err
		}
		subject, err := loadSubject(ctx, q, t, rt.UserID, errRefresh)
		if err != nil {
			return err
		}
		sess, err = s.p.Sessions.Continue(ctx, q, subject, rt.FamilyID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if sess == nil {
		s.p.Logger.WarnContext(ctx, "refresh token reused; session revoked",
			"tenant_id", tenantID, "user_id", reused.UserID, "family_id", reused.FamilyID)
		// The session's access token (and the member's others here) must
		// fail on every replica now, not when it expires. A failed
		// invalidation is logged by Committed; the call fails either way.
		_ = s.p.Tenants.Committed(ctx, tenantID, "the reused session's access token")
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New(
			"refresh token was already used, so the session has been ended to protect it: sign in again"))
	}
	return connect.NewResponse(&quartersv1.RefreshTokenResponse{Session: sess}), nil
}

// SignOut ends the refresh token's session and, with everywhere, all of
// the signed-in user's sessions. Like OAuth token revocation (RFC 7009),
// signing out with a token that is unknown or already revoked succeeds:
// there is nothing left to end.
func (s *Service) SignOut(ctx context.Context, req *connect.Request[quartersv1.SignOutRequest]) (*connect.Response[quartersv1.SignOutResponse], error) {
	if req.Msg.GetEverywhere() {
		p, ok := auth.FromContext(ctx)
		if !ok || !p.IsUser() {
			return nil, connect.NewError(connect.CodeUnauthenticated, errors.New(
				"signing out everywhere needs the user's access token in Authorization: Bearer"))
		}
		tenants, err := s.p.DB.UserSignOutEverywhere(ctx, p.UserID)
		if err != nil {
			return nil, err
		}
		for _, id := range tenants {
			if err := s.p.Tenants.Committed(ctx, id, "access tokens issued before signing out"); err != nil {
				return nil, err
			}
		}
	}
	if rt := req.Msg.GetRefreshToken(); rt != "" {
		if err := s.endSession(ctx, rt); err != nil {
			return nil, err
		}
	}
	return connect.NewResponse(&quartersv1.SignOutResponse{}), nil
}

// endSession revokes the family of the refresh token, if it exists.
func (s *Service) endSession(ctx context.Context, raw string) error {
	hash, err := auth.RefreshToken.Parse(raw)
	if err != nil {
		return nil
	}
	tenantID, err := s.p.DB.RefreshTokenTenant(ctx, hash)
	if errors.Is(err, db.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.p.DB.ActAs(ctx, tenantID, func(q *dbsqlc.Queries) error {
		rt, err := q.RefreshTokenGet(ctx, dbsqlc.RefreshTokenGetParams{TenantID: tenantID, TokenHash: hash[:]})
		if err != nil {
			return fmt.Errorf("get refresh token: %w", err)
		}
		_, err = q.RefreshTokenRevokeFamily(ctx, dbsqlc.RefreshTokenRevokeFamilyParams{TenantID: tenantID, FamilyID: rt.FamilyID})
		return err
	})
}

// errNotMember is SwitchTenant's answer for a tenant that does not exist
// and for one the user does not belong to alike.
func errNotMember() error {
	return connect.NewError(connect.CodeNotFound, errors.New("tenant not found among your memberships"))
}

// SwitchTenant starts a session in another of the signed-in user's
// tenants. The current session stays valid.
func (s *Service) SwitchTenant(ctx context.Context, req *connect.Request[quartersv1.SwitchTenantRequest]) (*connect.Response[quartersv1.SwitchTenantResponse], error) {
	p, _ := auth.FromContext(ctx) // the access rule admits signed-in users only
	tenantID, err := s.p.DB.TenantResolve(ctx, req.Msg.GetTenant())
	if errors.Is(err, db.ErrNotFound) {
		return nil, errNotMember()
	}
	if err != nil {
		return nil, err
	}
	sess, err := s.start(ctx, tenantID, p.UserID, errNotMember)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.SwitchTenantResponse{Session: sess}), nil
}
