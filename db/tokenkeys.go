package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/quarters-dev/quarters/gen/dbsqlc"
)

// The key set that signs access tokens (table token_keys, 006_identity.sql)
// is one row shared by every replica and by no tenant: these functions read
// and change it outside any tenant. The bytes are token.KeySet's
// MarshalPrivate form, private seeds included; this package never looks
// inside them.

// TokenKeys returns the stored key set and when it was last rotated (or
// created). It returns ErrNotFound if none is stored yet. It takes no lock,
// so replicas can poll it cheaply.
func (d *DB) TokenKeys(ctx context.Context) (keySet []byte, rotated time.Time, err error) {
	row, err := dbsqlc.New(d.pool).TokenKeysGet(ctx)
	if err != nil {
		return nil, time.Time{}, notFoundOr(err, "get token keys")
	}
	return row.KeySet, row.RotateTime, nil
}

// UpdateTokenKeysFunc decides a change to the stored key set. keySet is nil
// and rotated zero when none is stored yet. It returns the set to store and
// its rotate time, or a nil next to leave the row as it is. It may be called
// twice (see UpdateTokenKeys), so it must not have effects of its own.
type UpdateTokenKeysFunc func(keySet []byte, rotated time.Time) (next []byte, nextRotated time.Time, err error)

// UpdateTokenKeys changes the stored key set one replica at a time: in one
// transaction it locks the row (SELECT … FOR UPDATE), calls fn with what is
// stored, and stores what fn returns. It returns the set stored when it
// commits, with its rotate time, so every caller ends up holding the same
// set. fn's error rolls back and is returned as is.
//
// FOR UPDATE cannot lock a row that does not exist yet, so when several
// replicas start together on an empty table each may create a set; the
// insert does nothing on conflict, so the first to commit wins and the
// others call fn again with the winner's set (and normally keep it).
func (d *DB) UpdateTokenKeys(ctx context.Context, fn UpdateTokenKeysFunc) ([]byte, time.Time, error) {
	var (
		stored  []byte
		rotated time.Time
	)
	err := d.tx(ctx, func(tx pgx.Tx) error {
		q := dbsqlc.New(tx)
		// Twice at most: after losing the race to create the row, the
		// second read sees the winner's (READ COMMITTED: each statement
		// reads what is committed when it starts).
		for range 2 {
			row, err := q.TokenKeysGetForUpdate(ctx)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) { // pgx's own: this tx is not at the edge
				return fmt.Errorf("lock token keys: %w", err)
			}
			stored, rotated = row.KeySet, row.RotateTime
			next, nextRotated, err := fn(stored, rotated)
			if err != nil {
				return err
			}
			if next == nil {
				return nil
			}
			if stored != nil {
				if err := q.TokenKeysPut(ctx, dbsqlc.TokenKeysPutParams{KeySet: next, RotateTime: nextRotated}); err != nil {
					return fmt.Errorf("put token keys: %w", err)
				}
				stored, rotated = next, nextRotated
				return nil
			}
			// An insert that meets a row another transaction has inserted
			// but not committed waits for it; then it does nothing.
			tag, err := tx.Exec(ctx, `INSERT INTO token_keys (id, key_set, rotate_time)
VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING`, next, nextRotated)
			if err != nil {
				return fmt.Errorf("insert token keys: %w", err)
			}
			if tag.RowsAffected() == 1 {
				stored, rotated = next, nextRotated
				return nil
			}
		}
		return errors.New("token keys: row vanished while updating")
	})
	if err != nil {
		return nil, time.Time{}, err
	}
	return stored, rotated, nil
}

// tx runs fn in a transaction that belongs to no tenant, for the few tables
// without one (token_keys). fn's error, or a failed commit, rolls back; the
// rollback runs even after ctx is cancelled, and a connection whose
// rollback fails is closed rather than returned to the pool.
func (d *DB) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		defer cancel()
		// After Commit this is a no-op returning ErrTxClosed.
		_ = tx.Rollback(rctx)
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
