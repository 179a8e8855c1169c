package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// The identity lookups (006_identity.sql, 007_email_proof.sql): privileged
// reads and writes that happen before a tenant is known (sign-in, refresh,
// invitation, the email tokens of verification and password reset) or
// that span the tenants of one user. Each calls a SECURITY DEFINER
// function and takes the proof it needs: a token's hash (holding the
// token), an email whose password the server checks, or the id of the
// user the server has authenticated. Together with lookup.go and dbsqlc's
// UserEnsure and UserSignOutEverywhere they are the whole privileged
// surface.

// Credentials are a user's id, password hash (nil if none is set) and
// whether the email is verified.
type Credentials struct {
	UserID        uuid.UUID
	PasswordHash  *string
	EmailVerified bool
}

// UserCredentials returns the credentials of the user with email (any
// case), or ErrNotFound.
func (d *DB) UserCredentials(ctx context.Context, email string) (Credentials, error) {
	var c Credentials
	err := d.pool.QueryRow(ctx, `SELECT user_id, password_hash, email_verified FROM app.user_credentials($1)`, email).
		Scan(&c.UserID, &c.PasswordHash, &c.EmailVerified)
	return c, notFoundOr(err, "look up user")
}

// The purposes of email tokens (email_tokens.purpose).
const (
	// PurposeVerifyEmail tokens mark an address verified.
	PurposeVerifyEmail = "verify_email"
	// PurposeSetPassword tokens set a new password (a reset, or the first
	// password after a sign-up without one) and verify the address.
	PurposeSetPassword = "set_password"
)

// EmailTokenIssueParams are EmailTokenIssue's inputs.
type EmailTokenIssueParams struct {
	// Email names the user (any case).
	Email string
	// Purpose is PurposeVerifyEmail or PurposeSetPassword.
	Purpose string
	// Hash is the SHA-256 of the token the mail will carry.
	Hash [32]byte
	// TTL is how long the token lives, from its first issue.
	TTL time.Duration
	// JobID is the delivering job: a retry replaces that job's token.
	JobID int64
	// MaxLive caps the user's live tokens of Purpose; at the cap nothing
	// is issued.
	MaxLive int
}

// IssuedToken is where an issued token's mail goes, and until when the
// token works.
type IssuedToken struct {
	UserID     uuid.UUID
	Email      string
	ExpireTime time.Time
}

// EmailTokenIssue stores an email token's hash for the user with p.Email,
// for the mail worker to send. It returns ErrNotFound when there is
// nothing to send: no such user, an address already verified (for
// PurposeVerifyEmail), the job's token already used or expired, or
// MaxLive tokens live.
func (d *DB) EmailTokenIssue(ctx context.Context, p EmailTokenIssueParams) (IssuedToken, error) {
	var t IssuedToken
	err := d.pool.QueryRow(ctx, `SELECT user_id, email, expire_time FROM app.email_token_issue($1, $2, $3, $4, $5, $6)`,
		p.Email, p.Purpose, p.Hash[:], p.TTL, p.JobID, p.MaxLive).Scan(&t.UserID, &t.Email, &t.ExpireTime)
	return t, notFoundOr(err, "issue email token")
}

// UserVerifyEmail uses the verify_email token stored under hash, once,
// and marks its user's address verified, returning the user. An unknown,
// expired or used token (or one of another purpose) is ErrNotFound.
func (d *DB) UserVerifyEmail(ctx context.Context, hash [32]byte) (uuid.UUID, error) {
	return d.scalarUUID(ctx, `SELECT app.user_verify_email($1)`, "verify email", hash[:])
}

// UserPasswordReset uses the set_password token stored under hash, once:
// the user's password becomes passwordHash, the address is verified, and
// every session of the user ends. It returns the user and the tenants
// whose cached records the caller must invalidate. An unknown, expired or
// used token (or one of another purpose) is ErrNotFound.
func (d *DB) UserPasswordReset(ctx context.Context, hash [32]byte, passwordHash string) (uuid.UUID, []uuid.UUID, error) {
	var (
		user    uuid.UUID
		tenants []uuid.UUID
	)
	err := d.pool.QueryRow(ctx, `SELECT user_id, tenants FROM app.user_password_reset($1, $2)`, hash[:], passwordHash).
		Scan(&user, &tenants)
	return user, tenants, notFoundOr(err, "reset password")
}

// ErrPasswordChanged is returned by UserPasswordChange when the password
// is no longer the one the caller checked.
var ErrPasswordChanged = errors.New("password changed concurrently")

// UserPasswordChange replaces userID's password, if it still is
// currentHash, with newHash and ends every session of the user, returning
// the tenants whose cached records the caller must invalidate; otherwise
// ErrPasswordChanged. Call it only with the id of the authenticated user,
// after checking their current password against currentHash.
func (d *DB) UserPasswordChange(ctx context.Context, userID uuid.UUID, currentHash, newHash string) ([]uuid.UUID, error) {
	var tenants *[]uuid.UUID
	if err := d.pool.QueryRow(ctx, `SELECT app.user_password_change($1, $2, $3)`, userID, currentHash, newHash).Scan(&tenants); err != nil {
		return nil, fmt.Errorf("change password: %w", err)
	}
	if tenants == nil {
		return nil, ErrPasswordChanged
	}
	return *tenants, nil
}

// TenantResolve returns the id of the tenant whose slug or id is selector,
// or ErrNotFound.
func (d *DB) TenantResolve(ctx context.Context, selector string) (uuid.UUID, error) {
	return d.scalarUUID(ctx, `SELECT app.tenant_resolve($1)`, "resolve tenant", selector)
}

// RefreshTokenTenant returns the tenant of the refresh token stored under
// hash, or ErrNotFound.
func (d *DB) RefreshTokenTenant(ctx context.Context, hash [32]byte) (uuid.UUID, error) {
	return d.scalarUUID(ctx, `SELECT app.refresh_token_tenant($1)`, "look up refresh token", hash[:])
}

// InvitationTenant returns the tenant of the invitation stored under hash,
// or ErrNotFound.
func (d *DB) InvitationTenant(ctx context.Context, hash [32]byte) (uuid.UUID, error) {
	return d.scalarUUID(ctx, `SELECT app.invitation_tenant($1)`, "look up invitation", hash[:])
}

// UserTenant is one of a user's memberships, with its tenant.
type UserTenant struct {
	TenantID   uuid.UUID
	Slug, Name string
	Role       string
}

// UserTenants lists the tenants userID belongs to, by slug. Call it only
// with the id of the authenticated user.
func (d *DB) UserTenants(ctx context.Context, userID uuid.UUID) ([]UserTenant, error) {
	rows, err := d.pool.Query(ctx, `SELECT tenant_id, slug, name, role FROM app.user_tenants($1)`, userID)
	if err != nil {
		return nil, fmt.Errorf("list user tenants: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[UserTenant])
	if err != nil {
		return nil, fmt.Errorf("list user tenants: %w", err)
	}
	return out, nil
}

// UserSignOutEverywhere revokes every refresh token of userID and moves on
// the version of each of its memberships, returning the tenants touched
// (whose cached records the caller must invalidate). Call it only with the
// id of the authenticated user.
func (d *DB) UserSignOutEverywhere(ctx context.Context, userID uuid.UUID) ([]uuid.UUID, error) {
	rows, err := d.pool.Query(ctx, `SELECT app.user_sign_out_everywhere($1)`, userID)
	if err != nil {
		return nil, fmt.Errorf("sign out everywhere: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("sign out everywhere: %w", err)
	}
	return out, nil
}

// scalarUUID runs a lookup returning one uuid, NULL meaning not found.
func (d *DB) scalarUUID(ctx context.Context, sql, what string, arg any) (uuid.UUID, error) {
	var id *uuid.UUID
	if err := d.pool.QueryRow(ctx, sql, arg).Scan(&id); err != nil {
		return uuid.Nil, fmt.Errorf("%s: %w", what, err)
	}
	if id == nil {
		return uuid.Nil, ErrNotFound
	}
	return *id, nil
}

func notFoundOr(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return notFoundErr{}
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
}
