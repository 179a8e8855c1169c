package db

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// versionTable records the applied migration version. It lives in the
// owner's default schema and the app role has no access to it.
const versionTable = "public.schema_version"

// Migrate applies every pending migration to the database at ownerURL:
// River's job queue schema (rivermigrate), then Quarters' own. The URL
// must name the role that owns (or will own) the schema, never the app
// role. Both take an advisory lock, so concurrent callers apply each
// migration once; each migration runs in its own transaction.
//
// River's come first because 007_email_proof.sql grants the app role what
// River needs on River's tables. A River upgrade that adds a table needs a
// migration of ours granting it.
func Migrate(ctx context.Context, ownerURL string) error {
	conn, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		return fmt.Errorf("connect as owner: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	if err := migrateRiver(ctx, conn); err != nil {
		return err
	}

	m, err := migrate.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		return fmt.Errorf("new migrator: %w", err)
	}
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	if err := m.LoadMigrations(sub); err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// migrateRiver applies River's pending migrations one at a time, each in
// its own transaction (a later one may use an enum value an earlier one
// added, which PostgreSQL allows only after a commit) that first takes an
// advisory lock of ours (rivermigrate takes none), so replicas starting
// together do not race.
func migrateRiver(ctx context.Context, conn *pgx.Conn) error {
	// The driver needs no pool: MigrateTx runs in the given transaction.
	m, err := rivermigrate.New(riverpgxv5.New(nil), &rivermigrate.Config{
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return fmt.Errorf("river migrator: %w", err)
	}
	for {
		applied, err := migrateRiverStep(ctx, conn, m)
		if err != nil {
			return err
		}
		if !applied {
			return nil
		}
	}
}

// migrateRiverStep applies River's next pending migration, if any.
func migrateRiverStep(ctx context.Context, conn *pgx.Conn, m *rivermigrate.Migrator[pgx.Tx]) (applied bool, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("begin river migration: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if _, err := tx.Exec(ctx, "select pg_advisory_xact_lock(hashtextextended('quarters.river_migrate', 0))"); err != nil {
		return false, fmt.Errorf("lock river migration: %w", err)
	}
	res, err := m.MigrateTx(ctx, tx, rivermigrate.DirectionUp, &rivermigrate.MigrateOpts{MaxSteps: 1})
	if err != nil {
		return false, fmt.Errorf("river migrate: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("commit river migration: %w", err)
	}
	return len(res.Versions) > 0, nil
}
