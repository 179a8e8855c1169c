package db

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNotFound is what every read of this package, and every sqlc query run
// inside InTenant, ActAs and their variants, returns (wrapped) when no row
// matched: the one not-found error the server maps to the API, once
// (internal/observe). pgx.ErrNoRows is turned into it here, at the edge,
// so packages above db never see pgx's errors. It still matches
// pgx.ErrNoRows with errors.Is, for the libraries (River) that look for
// that.
var ErrNotFound = errors.New("not found")

// notFoundErr is pgx.ErrNoRows as ErrNotFound.
type notFoundErr struct{}

func (notFoundErr) Error() string        { return "not found" }
func (notFoundErr) Is(target error) bool { return target == ErrNotFound }
func (notFoundErr) Unwrap() error        { return pgx.ErrNoRows }

// notFound is pgx.ErrNoRows turned into ErrNotFound; any other error is
// returned unchanged.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) && !errors.Is(err, ErrNotFound) {
		return notFoundErr{}
	}
	return err
}

// edgeTx is a pgx.Tx whose QueryRow turns pgx.ErrNoRows into ErrNotFound,
// for the sqlc queries of the transactions that hand out the pgx.Tx itself
// (InTenantTx, ActAsTx).
type edgeTx struct{ pgx.Tx }

func (t edgeTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return edgeRow{t.Tx.QueryRow(ctx, sql, args...)}
}

// Exec is the embedded Tx's; spelled out so edgeTx satisfies dbsqlc.DBTX
// without ambiguity.
func (t edgeTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return t.Tx.Exec(ctx, sql, args...)
}

type edgeRow struct{ pgx.Row }

func (r edgeRow) Scan(dest ...any) error { return notFound(r.Row.Scan(dest...)) }
