package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/quarters-dev/quarters/server/auth"
)

// This file holds the pre-tenant lookups: the only reads that happen before
// a request's tenant is known. Each calls a SECURITY DEFINER function from
// db/migrations (see 001_init.sql), and each is covered by tests. They are
// written here rather than in db/queries because sqlc cannot type the
// columns of a function returning TABLE. Add to them sparingly.

// LookupAPIKey finds the live API key stored under hash, with its tenant.
// It returns auth.ErrUnknownKey if no such key exists or it is revoked or
// expired. It runs as a single statement, one round trip.
func (d *DB) LookupAPIKey(ctx context.Context, hash [32]byte) (*auth.Record, error) {
	const q = `SELECT key_id, tenant_id, role, secret_hash, tenant_slug, tenant_status
FROM app.api_key_authenticate($1)`
	var (
		rec          auth.Record
		role, status string
	)
	err := d.pool.QueryRow(ctx, q, hash[:]).Scan(
		&rec.KeyID, &rec.TenantID, &role, &rec.SecretHash, &rec.TenantSlug, &status)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, auth.ErrUnknownKey
	}
	if err != nil {
		return nil, fmt.Errorf("look up api key: %w", err)
	}
	rec.Role = auth.ParseRole(role)
	rec.TenantActive = status == "active"
	return &rec, nil
}
