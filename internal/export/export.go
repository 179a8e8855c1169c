// Package export writes a tenant's export: every row of the tenant, from
// every table the database's catalog says holds tenant rows (a tenant_id
// column), as one tar.gz archive with an NDJSON file per table and a
// manifest of row counts and SHA-256 digests. Discovering the tables from
// the catalog, rather than listing them, means a table added later cannot
// be forgotten.
//
// The archive is written by a job (Args, NewWorker) acting for the tenant
// under row-level security, as every tenant job does (jobs.TenantWorker),
// and stored in the tenant's tenant_exports row.
package export

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	"github.com/quarters-dev/quarters/internal/jobs"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// ManifestFile is the manifest's name in the archive.
const ManifestFile = "manifest.json"

// skipped are tables with a tenant_id column that are not exported:
// tenant_exports holds earlier archives, which would make each export
// contain all the ones before it.
var skipped = map[string]bool{"tenant_exports": true}

// Manifest describes an archive.
type Manifest struct {
	TenantID   uuid.UUID `json:"tenant_id"`
	CreateTime time.Time `json:"create_time"`
	// Tables are the exported tables, by name.
	Tables []Table `json:"tables"`
}

// Table is one table's file in the archive.
type Table struct {
	Name string `json:"name"`
	// File is the NDJSON file: one JSON object per row, its columns.
	File string `json:"file"`
	Rows int    `json:"rows"`
	// SHA256 is the hex SHA-256 of File.
	SHA256 string `json:"sha256"`
}

// TenantTables lists the tables that hold tenant rows, from the catalog:
// every table of the schema with a tenant_id column, but the skipped.
func TenantTables(ctx context.Context, tx pgx.Tx) ([]string, error) {
	rows, err := tx.Query(ctx, `
SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema()
  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list tenant tables: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list tenant tables: %w", err)
	}
	out := names[:0]
	for _, n := range names {
		if !skipped[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// queries are the exported tables with their query: the tenant's own
// row, the members' user records (shared between tenants; row-level
// security shows a tenant its members only), minus their password hashes
// (a person's credential, not the tenant's data), and then every tenant
// table.
func queries(tables []string) [][2]string {
	q := [][2]string{
		{"tenants", `SELECT row_to_json(t)::text FROM tenants t WHERE id = $1`},
		{"users", `SELECT (to_jsonb(u) - 'password_hash')::text FROM users u WHERE $1::uuid IS NOT NULL ORDER BY u.id`},
	}
	for _, t := range tables {
		id := pgx.Identifier{t}.Sanitize()
		// Ordered by the whole row: the same rows give the same file.
		q = append(q, [2]string{t, `SELECT row_to_json(t)::text FROM ` + id + ` t WHERE tenant_id = $1 ORDER BY row_to_json(t)::text`})
	}
	return q
}

// Write writes the archive of tenantID's rows, read in tx (which must act
// for that tenant, so row-level security bounds every read to its rows),
// to w, and returns its manifest.
func Write(ctx context.Context, tx pgx.Tx, tenantID uuid.UUID, w *bytes.Buffer) (Manifest, error) {
	tables, err := TenantTables(ctx, tx)
	if err != nil {
		return Manifest{}, err
	}
	m := Manifest{TenantID: tenantID, CreateTime: time.Now().UTC().Truncate(time.Second)}
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	var file bytes.Buffer
	for _, q := range queries(tables) {
		file.Reset()
		n, err := dump(ctx, tx, q[1], tenantID, &file)
		if err != nil {
			return Manifest{}, fmt.Errorf("export %s: %w", q[0], err)
		}
		sum := sha256.Sum256(file.Bytes())
		t := Table{Name: q[0], File: q[0] + ".ndjson", Rows: n, SHA256: hex.EncodeToString(sum[:])}
		if err := add(tw, t.File, m.CreateTime, file.Bytes()); err != nil {
			return Manifest{}, err
		}
		m.Tables = append(m.Tables, t)
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, fmt.Errorf("encode manifest: %w", err)
	}
	if err := add(tw, ManifestFile, m.CreateTime, append(raw, '\n')); err != nil {
		return Manifest{}, err
	}
	if err := tw.Close(); err != nil {
		return Manifest{}, fmt.Errorf("close archive: %w", err)
	}
	if err := gz.Close(); err != nil {
		return Manifest{}, fmt.Errorf("close archive: %w", err)
	}
	return m, nil
}

// dump writes each row of sql (one text column) as a line.
func dump(ctx context.Context, tx pgx.Tx, sql string, tenantID uuid.UUID, b *bytes.Buffer) (int, error) {
	rows, err := tx.Query(ctx, sql, tenantID)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return 0, err
		}
		b.WriteString(line)
		b.WriteByte('\n')
		n++
	}
	return n, rows.Err()
}

func add(tw *tar.Writer, name string, mod time.Time, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: mod, Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	return nil
}

// Args are the export job's arguments: the tenant and its tenant_exports
// row.
type Args struct {
	TenantID uuid.UUID `json:"tenant_id"`
	ExportID uuid.UUID `json:"export_id"`
}

// Kind is River's job kind.
func (Args) Kind() string { return "tenant_export" }

// JobTenant is the tenant the export is of.
func (a Args) JobTenant() uuid.UUID { return a.TenantID }

// InsertOpts bounds the attempts: an export that fails five times is for
// the operator (PlatformService.ListFailedJobs).
func (Args) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 5} }

// NewWorker returns the export job's worker. load reads the tenant (the
// tenant cache's Get); a suspended tenant's export is dropped, while one
// whose deletion is pending is exported, so its owner can take the data
// before the purge.
func NewWorker(d *db.DB, load jobs.LoadTenantFunc, logger *slog.Logger) *jobs.TenantWorker[Args] {
	return jobs.NewTenantWorker(jobs.TenantWorkerParams[Args]{
		Load: load, Logger: logger, Deleting: true,
		WorkFunc: func(ctx context.Context, j *river.Job[Args]) error { return Run(ctx, d, j.Args.ExportID) },
	})
}

// Run writes the archive of the export exportID of the tenant in ctx and
// stores it, in one transaction acting for the tenant, REPEATABLE READ so
// the archive is one instant's rows (a document is never exported without
// its project because the project was deleted between the two tables'
// reads; the import would then refuse it). An export that is
// already done, or gone, is left alone (a retried job, or one whose
// tenant deleted the export).
func Run(ctx context.Context, d *db.DB, exportID uuid.UUID) error {
	t := tenancy.MustFromContext(ctx)
	return d.InTenantSnapshotTx(ctx, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		_, err := q.TenantExportLock(ctx, dbsqlc.TenantExportLockParams{TenantID: t.ID, ID: exportID})
		if errors.Is(err, db.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock export: %w", err)
		}
		var archive bytes.Buffer
		m, err := Write(ctx, tx, t.ID, &archive)
		if err != nil {
			return err
		}
		raw, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("encode manifest: %w", err)
		}
		sum := sha256.Sum256(archive.Bytes())
		return q.TenantExportFinish(ctx, dbsqlc.TenantExportFinishParams{
			TenantID: t.ID, ID: exportID, Archive: archive.Bytes(), Sha256: sum[:], Manifest: raw,
		})
	})
}
