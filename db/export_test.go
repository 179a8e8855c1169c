package db

import (
	"context"

	"github.com/google/uuid"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarters-dev/quarters/gen/dbsqlc"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// InTenantDBTX runs raw SQL the way InTenant runs sqlc queries, so tests
// can show what row-level security does to a query that forgets its filter.
func (d *DB) InTenantDBTX(ctx context.Context, fn func(tx dbsqlc.DBTX) error) error {
	t := tenancy.MustFromContext(ctx)
	return d.inTenantTx(ctx, t.ID, t.Limits.StatementTimeout, fn)
}

// NewForTest wraps a pool the test configured itself (to count round trips).
// On Citus it sets the tenant as Open's DB does.
func NewForTest(pool *pgxpool.Pool) *DB {
	var citus bool
	if err := pool.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')").Scan(&citus); err != nil {
		panic(err)
	}
	return &DB{pool: pool, citus: citus}
}

// UUIDScanIsBinary reports whether m scans a binary uuid into a
// uuid.UUID with the codec that copies bytes (not through text).
func UUIDScanIsBinary(m *pgtype.Map) bool {
	var u uuid.UUID
	_, ok := m.PlanScan(pgtype.UUIDOID, pgtype.BinaryFormatCode, &u).(scanBinaryUUID)
	return ok
}
