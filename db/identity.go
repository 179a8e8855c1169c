package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// The identity lookups (006_identity.sql): privileged reads and one write
// that happen before a tenant is known (sign-in, refresh, invitation) or
// that span the tenants of the signed-in user. Each calls a SECURITY
// DEFINER function; together with lookup.go and dbsqlc's UserEnsure they
// are the whole privileged surface.

// ErrNotFound is returned by the identity lookups when nothing matches.
var ErrNotFound = errors.New("not found")

// Credentials are a user's id and password hash (nil if none is set).
type Credentials struct {
	UserID       uuid.UUID
	PasswordHash *string
}

// UserCredentials returns the credentials of the user with email (any
// case), or ErrNotFound.
func (d *DB) UserCredentials(ctx context.Context, email string) (Credentials, error) {
	var c Credentials
	err := d.pool.QueryRow(ctx, `SELECT user_id, password_hash FROM app.user_credentials($1)`, email).
		Scan(&c.UserID, &c.PasswordHash)
	return c, notFound(err, "look up user")
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

func notFound(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return ErrNotFound
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
}
