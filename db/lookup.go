package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/quarters-dev/quarters/gen/dbsqlc"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// This file holds the privileged lookups: the pre-tenant lookups, the only
// reads that happen before a request's tenant is known, the platform
// operator's reads across tenants, and the purge of a deleted tenant. Each calls a SECURITY DEFINER function
// from db/migrations (see 001_init.sql, 003_platform.sql, 011_tenant_deletion.sql), and each is
// covered by tests. They are
// written here rather than in db/queries because sqlc cannot type the
// columns of a function returning TABLE. Add to them sparingly.

// APIKeyRecord is a live API key with its tenant, as LookupAPIKey finds
// it: the database's row, which internal/auth turns into a principal.
type APIKeyRecord struct {
	KeyID, TenantID uuid.UUID
	TenantSlug      string
	// TenantActive is false for a suspended tenant.
	TenantActive bool
	Role         tenancy.Role
	// SecretHash is the stored hash, compared again in constant time.
	SecretHash []byte
	// ExpireTime is when the key stops working; nil if never.
	ExpireTime *time.Time
}

// LookupAPIKey finds the live API key stored under hash, with its tenant.
// It returns ErrNotFound if no such key exists or it is revoked or
// expired. It runs as a single statement, one round trip.
func (d *DB) LookupAPIKey(ctx context.Context, hash [32]byte) (*APIKeyRecord, error) {
	const q = `SELECT key_id, tenant_id, role, secret_hash, tenant_slug, tenant_status, expire_time
FROM app.api_key_authenticate($1)`
	var (
		rec          APIKeyRecord
		role, status string
	)
	err := d.pool.QueryRow(ctx, q, hash[:]).Scan(
		&rec.KeyID, &rec.TenantID, &role, &rec.SecretHash, &rec.TenantSlug, &status, &rec.ExpireTime)
	if err != nil {
		return nil, notFoundOr(err, "look up api key")
	}
	rec.Role = tenancy.ParseRole(role)
	rec.TenantActive = status == "active"
	return &rec, nil
}

// The platform lookups: the operator's reads across tenants, for
// PlatformService only (its RPCs admit the platform credential alone).
// Each calls a SECURITY DEFINER function of 003_platform.sql, which returns
// nothing inside a transaction acting for a tenant. Reads and writes of one
// tenant go through ActAs instead, under row-level security.

// PlatformTenantListParams are PlatformTenantList's inputs.
type PlatformTenantListParams struct {
	// Status ("active", "suspended") and Plan filter when not empty.
	Status, Plan string
	// BeforeTime and BeforeID are the keyset cursor: only tenants created
	// strictly before (BeforeTime, BeforeID) are listed.
	BeforeTime time.Time
	BeforeID   uuid.UUID
	// Limit caps the rows returned (at most 1001).
	Limit int32
}

// PlatformTenantList lists tenants across all tenants, newest first, in
// one statement.
func (d *DB) PlatformTenantList(ctx context.Context, p PlatformTenantListParams) ([]dbsqlc.Tenant, error) {
	const q = `SELECT id, slug, name, plan, status, owner_email, create_time, update_time
FROM app.platform_tenant_list($1, $2, $3, $4, $5)`
	rows, err := d.pool.Query(ctx, q, nullIfEmpty(p.Status), nullIfEmpty(p.Plan), p.BeforeTime, p.BeforeID, p.Limit)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (dbsqlc.Tenant, error) {
		var t dbsqlc.Tenant
		err := r.Scan(&t.ID, &t.Slug, &t.Name, &t.Plan, &t.Status, &t.OwnerEmail, &t.CreateTime, &t.UpdateTime)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return out, nil
}

// PlatformAuditEventListParams are PlatformAuditEventList's inputs.
type PlatformAuditEventListParams struct {
	// BeforeTime and BeforeID are the keyset cursor: only events created
	// strictly before (BeforeTime, BeforeID) are listed.
	BeforeTime time.Time
	BeforeID   uuid.UUID
	// Limit caps the rows returned (at most 1001).
	Limit int32
}

// PlatformAuditEventList lists the audit events of all tenants, newest
// first, in one statement. (One tenant's are read with ActAs and
// dbsqlc's AuditEventList.)
func (d *DB) PlatformAuditEventList(ctx context.Context, p PlatformAuditEventListParams) ([]dbsqlc.AuditEvent, error) {
	const q = `SELECT tenant_id, id, actor, action, before, after, create_time
FROM app.platform_audit_event_list($1, $2, $3)`
	rows, err := d.pool.Query(ctx, q, p.BeforeTime, p.BeforeID, p.Limit)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (dbsqlc.AuditEvent, error) {
		var e dbsqlc.AuditEvent
		err := r.Scan(&e.TenantID, &e.ID, &e.Actor, &e.Action, &e.Before, &e.After, &e.CreateTime)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return out, nil
}

// nullIfEmpty is SQL NULL for "", which the platform functions read as
// "no filter".
func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// PurgeOutcome is what PurgeTenant did.
type PurgeOutcome string

// PurgeTenant's outcomes, as app.tenant_purge returns them.
const (
	// PurgePurged: every row of the tenant is deleted and its certificate
	// written.
	PurgePurged PurgeOutcome = "purged"
	// PurgeGone: there is no such tenant (purged already).
	PurgeGone PurgeOutcome = "gone"
	// PurgeNotPending: the tenant's deletion is not pending (cancelled).
	PurgeNotPending PurgeOutcome = "not_pending"
	// PurgeNotDue: the tenant's purge_time is still to come.
	PurgeNotDue PurgeOutcome = "not_due"
)

// PurgeTenant deletes every row of tenant id, from every table with a
// tenant_id column, its River jobs (but keepJob, the purge job calling
// it) and the users of it who belong to no other tenant, and writes its
// deletion certificate, all in one transaction (app.tenant_purge of
// 011_tenant_deletion.sql): a failure anywhere rolls all of it back. Only
// a tenant whose deletion is pending and due is purged; the outcome says
// what happened. For the purge job only (internal/deletion).
func (d *DB) PurgeTenant(ctx context.Context, id uuid.UUID, keepJob int64) (PurgeOutcome, error) {
	var out string
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT app.tenant_purge($1, $2)", id, keepJob).Scan(&out)
	})
	if err != nil {
		return "", fmt.Errorf("purge tenant %s: %w", id, err)
	}
	return PurgeOutcome(out), nil
}

// DeletionCertificate is the record a tenant's purge leaves.
type DeletionCertificate struct {
	TenantID                              uuid.UUID
	Slug                                  string
	RequestedBy                           string
	RequestTime, ScheduledTime, PurgeTime time.Time
	// ExportSHA256 is the digest of the tenant's last finished export; nil
	// if none.
	ExportSHA256 []byte
	// Tables maps each table to its rows before and after the purge.
	Tables map[string]DeletionCount
}

// DeletionCount is one table's rows of the tenant before and after its
// purge.
type DeletionCount struct {
	Before int64 `json:"before"`
	After  int64 `json:"after"`
}

// PlatformDeletionCertificate returns the certificate of purged tenant id
// (app.tenant_deletion_certificate), for the operator; ErrNotFound if the
// tenant was never purged.
func (d *DB) PlatformDeletionCertificate(ctx context.Context, id uuid.UUID) (DeletionCertificate, error) {
	const q = `SELECT deleted_tenant_id, slug, requested_by, request_time, scheduled_time, purge_time, export_sha256, tables
FROM app.tenant_deletion_certificate($1)`
	var (
		c      DeletionCertificate
		tables []byte
	)
	err := d.pool.QueryRow(ctx, q, id).Scan(&c.TenantID, &c.Slug, &c.RequestedBy, &c.RequestTime, &c.ScheduledTime, &c.PurgeTime, &c.ExportSHA256, &tables)
	if err != nil {
		return c, notFoundOr(err, "get deletion certificate")
	}
	if err := json.Unmarshal(tables, &c.Tables); err != nil {
		return c, fmt.Errorf("deletion certificate %s: %w", id, err)
	}
	return c, nil
}

// ErrNotIsolatable is returned by the shard operations for a request the
// cluster cannot carry out as asked (an unknown or inactive node); the
// error's text says why.
type ErrNotIsolatable struct{ Msg string }

func (e *ErrNotIsolatable) Error() string { return e.Msg }

// IsolateTenant gives tenant id shards of its own on Citus (every
// distributed table's rows of the tenant move to new shards, colocated,
// online) and returns the new shard id of the anchor table. A tenant
// already alone in its shards is left alone. It returns ErrNoCitus when
// the database is not a Citus coordinator and ErrNotFound for an unknown
// tenant. It runs as the operator, outside any tenant's transaction.
func (d *DB) IsolateTenant(ctx context.Context, id uuid.UUID) (shardID int64, err error) {
	if !d.citus {
		return 0, ErrNoCitus
	}
	err = d.pool.QueryRow(ctx, "SELECT app.citus_tenant_isolate($1)", id).Scan(&shardID)
	return shardID, shardError(err)
}

// MoveTenant moves the shards that hold tenant id, online, to the worker
// host:port (as the coordinator's metadata names it), with any tenant
// sharing them (IsolateTenant first to move one alone). It reports whether
// anything moved: false when they are there already. It returns
// ErrNoCitus, ErrNotFound for an unknown tenant, and *ErrNotIsolatable for
// a node that is not an active worker.
func (d *DB) MoveTenant(ctx context.Context, id uuid.UUID, host string, port int) (moved bool, err error) {
	if !d.citus {
		return false, ErrNoCitus
	}
	err = d.pool.QueryRow(ctx, "SELECT app.citus_tenant_move($1, $2, $3)", id, host, int32(port)).Scan(&moved)
	return moved, shardError(err)
}

// shardError maps the SQLSTATEs the shard functions raise.
func shardError(err error) error {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pgErr) && pgErr.Code == "P0002":
		return ErrNotFound
	case errors.As(err, &pgErr) && pgErr.Code == "22023":
		return &ErrNotIsolatable{Msg: pgErr.Message}
	}
	return fmt.Errorf("shard operation: %w", err)
}
