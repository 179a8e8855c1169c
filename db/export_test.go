package db

import (
	"context"

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
func NewForTest(pool *pgxpool.Pool) *DB { return &DB{pool: pool} }
