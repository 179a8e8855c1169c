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
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/notify"
	"github.com/quarters-dev/quarters/internal/password"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// errResetToken is ResetPassword's one answer for a token that cannot be
// used: malformed, unknown, of another kind, expired or used.
func errResetToken() error {
	return connect.NewError(connect.CodeNotFound, errors.New(
		"password link is invalid, expired or already used; ask for a new one with RequestPasswordReset"))
}

// errVerifyToken is VerifyEmail's, likewise.
func errVerifyToken() error {
	return connect.NewError(connect.CodeNotFound, errors.New(
		"verification link is invalid, expired or already used; ask for a new one with RequestEmailVerification"))
}

// RequestPasswordReset enqueues a reset mail for the email, and answers
// the same empty response whatever it names. The request path never looks
// the email up: the mail worker does, so neither the answer nor its timing
// (one insert, either way) tells whether the account exists.
func (s *Service) RequestPasswordReset(ctx context.Context, req *connect.Request[quartersv1.RequestPasswordResetRequest]) (*connect.Response[quartersv1.RequestPasswordResetResponse], error) {
	if err := s.p.Jobs.Insert(ctx, notify.PasswordReset(req.Msg.GetEmail())); err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.RequestPasswordResetResponse{}), nil
}

// RequestEmailVerification enqueues a verification mail, as
// RequestPasswordReset does a reset mail.
func (s *Service) RequestEmailVerification(ctx context.Context, req *connect.Request[quartersv1.RequestEmailVerificationRequest]) (*connect.Response[quartersv1.RequestEmailVerificationResponse], error) {
	if err := s.p.Jobs.Insert(ctx, notify.EmailVerification(req.Msg.GetEmail())); err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.RequestEmailVerificationResponse{}), nil
}

// ResetPassword sets a new password with a mailed set_password token. The
// new password is hashed before the token is looked at, so a valid and an
// unknown token take the same time. Using the token, setting the password,
// verifying the email and ending every session are one statement
// (app.user_password_reset), so two concurrent uses of one token cannot
// both succeed.
//
// Every replica then drops the cached records of the user's tenants, so
// old access tokens fail on their next use. A failed invalidation is
// logged (the password is set and the token used, so failing the call
// would only mislead): other replicas may then accept old access tokens
// until their cached record expires.
func (s *Service) ResetPassword(ctx context.Context, req *connect.Request[quartersv1.ResetPasswordRequest]) (*connect.Response[quartersv1.ResetPasswordResponse], error) {
	hash, err := auth.ResetToken.Parse(req.Msg.GetToken())
	if err != nil {
		return nil, errResetToken()
	}
	h, err := password.Hash(req.Msg.GetNewPassword(), s.p.Password)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	_, tenants, err := s.p.DB.UserPasswordReset(ctx, hash, h)
	if errors.Is(err, db.ErrNotFound) {
		return nil, errResetToken()
	}
	if err != nil {
		return nil, err
	}
	s.invalidate(ctx, tenants, "access tokens issued before the password was reset")
	return connect.NewResponse(&quartersv1.ResetPasswordResponse{}), nil
}

// VerifyEmail marks the email of a mailed verify_email token's user
// verified, once.
func (s *Service) VerifyEmail(ctx context.Context, req *connect.Request[quartersv1.VerifyEmailRequest]) (*connect.Response[quartersv1.VerifyEmailResponse], error) {
	hash, err := auth.VerifyToken.Parse(req.Msg.GetToken())
	if err != nil {
		return nil, errVerifyToken()
	}
	if _, err := s.p.DB.UserVerifyEmail(ctx, hash); errors.Is(err, db.ErrNotFound) {
		return nil, errVerifyToken()
	} else if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.VerifyEmailResponse{}), nil
}

// errCurrentPassword is ChangePassword's answer for a wrong current
// password.
func errCurrentPassword() error {
	return connect.NewError(connect.CodeUnauthenticated, errors.New("current_password is wrong"))
}

// ChangePassword replaces the signed-in user's password, checked against
// the current one, ends every session of the user in every tenant (the
// caller's included: an access token does not say which refresh-token
// family it came from, so "all but this one" could only spare the
// caller's access token by sparing every session's) and returns a fresh
// session in the caller's tenant in place of the caller's.
//
// A wrong current password is UNAUTHENTICATED; a password changed by
// another call meanwhile is ABORTED. Invalidation failures after the
// change are logged, as in ResetPassword.
func (s *Service) ChangePassword(ctx context.Context, req *connect.Request[quartersv1.ChangePasswordRequest]) (*connect.Response[quartersv1.ChangePasswordResponse], error) {
	p, _ := auth.FromContext(ctx) // the access rule admits signed-in users only
	t := tenancy.MustFromContext(ctx)
	u, err := db.InTenantV(ctx, s.p.DB, func(q *dbsqlc.Queries) (dbsqlc.User, error) {
		return q.UserGet(ctx, p.UserID)
	})
	if err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	if u.PasswordHash == nil {
		_ = password.CheckMissing(req.Msg.GetCurrentPassword(), s.p.Password)
		return nil, errCurrentPassword()
	}
	switch err := password.Check(req.Msg.GetCurrentPassword(), *u.PasswordHash); {
	case errors.Is(err, password.ErrMismatch):
		return nil, errCurrentPassword()
	case err != nil:
		return nil, fmt.Errorf("check password of user %s: %w", u.ID, err)
	}
	h, err := password.Hash(req.Msg.GetNewPassword(), s.p.Password)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	tenants, err := s.p.DB.UserPasswordChange(ctx, u.ID, *u.PasswordHash, h)
	if errors.Is(err, db.ErrPasswordChanged) {
		return nil, connect.NewError(connect.CodeAborted, errors.New("the password was changed by another call meanwhile; sign in again"))
	}
	if err != nil {
		return nil, err
	}
	s.invalidate(ctx, tenants, "access tokens issued before the password change")
	sess, err := s.start(ctx, t.ID, u.ID, errNotMember)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.ChangePasswordResponse{Session: sess}), nil
}

// invalidate drops the cached records of tenants on every replica after a
// committed change that ended sessions there. Failures are logged (by
// Committed) and otherwise ignored: see ResetPassword.
func (s *Service) invalidate(ctx context.Context, tenants []uuid.UUID, lingering string) {
	for _, id := range tenants {
		_ = s.p.Tenants.Committed(ctx, id, lingering)
	}
}
