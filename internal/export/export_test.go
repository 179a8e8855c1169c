package export_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/db/dbtest"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/export"
	"github.com/quarters-dev/quarters/internal/servertest"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

var ctx = context.Background()

// fill gives a tenant projects and documents.
func fill(t *testing.T, tn *servertest.Tenant, projects int) {
	t.Helper()
	for i := range projects {
		p, err := tn.Projects.CreateProject(ctx, connect.NewRequest(&quartersv1.CreateProjectRequest{Name: tn.Slug + "-p" + string(rune('a'+i))}))
		require.NoError(t, err)
		_, err = tn.Documents.CreateDocument(ctx, connect.NewRequest(&quartersv1.CreateDocumentRequest{
			ProjectId: p.Msg.GetProject().GetId(), Title: "d", Content: "secret of " + tn.Slug,
		}))
		require.NoError(t, err)
	}
}

// unpack reads an archive's files.
func unpack(t *testing.T, archive []byte) map[string][]byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		files[h.Name] = b
	}
	return files
}

// TestExportHoldsEveryRowOfTheTenant: the archive of A has a file for
// every table the catalog lists with a tenant_id column, each holding
// exactly A's rows there (counted behind row-level security's back, as
// the schema owner), with the manifest's counts and digests right; none
// of B's rows, and no password hash, are in it.
func TestExportHoldsEveryRowOfTheTenant(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a, b := s.SignUp(t), s.SignUp(t)
	fill(t, a, 3)
	fill(t, b, 2)
	aID := uuid.MustParse(a.ID)

	tn, err := s.DB.LoadTenant(ctx, aID)
	require.NoError(t, err)
	tctx := tenancy.NewContext(ctx, tn)
	var exportID uuid.UUID
	require.NoError(t, s.DB.InTenant(tctx, func(q *dbsqlc.Queries) error {
		e, err := q.TenantExportInsert(ctx, aID)
		exportID = e.ID
		return err
	}))
	require.NoError(t, export.Run(tctx, s.DB, exportID))

	var row dbsqlc.TenantExportArchiveRow
	require.NoError(t, s.DB.InTenant(tctx, func(q *dbsqlc.Queries) error {
		var err error
		row, err = q.TenantExportArchive(ctx, dbsqlc.TenantExportArchiveParams{TenantID: aID, ID: exportID})
		return err
	}))
	sum := sha256.Sum256(row.Archive)
	require.Equal(t, sum[:], row.Sha256, "the stored digest is the archive's")
	files := unpack(t, row.Archive)

	var m export.Manifest
	require.NoError(t, json.Unmarshal(files[export.ManifestFile], &m))
	require.Equal(t, aID, m.TenantID)

	owner, err := pgx.Connect(ctx, s.OwnerURL)
	require.NoError(t, err)
	defer owner.Close(ctx)
	rows, err := owner.Query(ctx, `
SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname = 'public'
  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
  AND c.relname <> 'tenant_exports'`)
	require.NoError(t, err)
	catalog, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Contains(t, catalog, "documents")
	require.GreaterOrEqual(t, len(catalog), 9, "api_keys, projects, documents, tenant_overrides, audit_events, usage_daily, memberships, invitations, refresh_tokens at least")

	byName := map[string]export.Table{}
	for _, tb := range m.Tables {
		byName[tb.Name] = tb
		f, ok := files[tb.File]
		require.True(t, ok, "%s is in the archive", tb.File)
		sum := sha256.Sum256(f)
		require.Equal(t, hex.EncodeToString(sum[:]), tb.SHA256, tb.File)
		lines := strings.Split(strings.TrimSuffix(string(f), "\n"), "\n")
		if len(f) == 0 {
			lines = nil
		}
		require.Len(t, lines, tb.Rows, tb.File)
		for _, l := range lines {
			var r map[string]any
			require.NoError(t, json.Unmarshal([]byte(l), &r), tb.File)
			require.NotContains(t, r, "password_hash", tb.File)
			if tid, ok := r["tenant_id"]; ok {
				require.Equal(t, a.ID, tid, "%s holds only A's rows", tb.File)
			}
		}
		require.NotContains(t, string(f), "secret of "+b.Slug)
	}
	for _, table := range catalog {
		tb, ok := byName[table]
		require.True(t, ok, "the catalog's table %s is exported", table)
		var n int
		require.NoError(t, owner.QueryRow(ctx, "select count(*) from "+pgx.Identifier{table}.Sanitize()+" where tenant_id = $1", aID).Scan(&n))
		require.Equal(t, n, tb.Rows, "every row of A in %s", table)
	}
	require.Equal(t, 1, byName["tenants"].Rows)
	require.Equal(t, 1, byName["users"].Rows, "A's one member")
	require.Equal(t, 3, byName["projects"].Rows)
	require.Equal(t, 3, byName["documents"].Rows)
	require.Contains(t, string(files["documents.ndjson"]), "secret of "+a.Slug)
	require.Len(t, files, len(m.Tables)+1, "the tables and the manifest, nothing else")

	// Run again: the export is done, and stays as it was.
	require.NoError(t, export.Run(tctx, s.DB, exportID))
	var again dbsqlc.TenantExportArchiveRow
	require.NoError(t, s.DB.InTenant(tctx, func(q *dbsqlc.Queries) error {
		var err error
		again, err = q.TenantExportArchive(ctx, dbsqlc.TenantExportArchiveParams{TenantID: aID, ID: exportID})
		return err
	}))
	require.Equal(t, row.Sha256, again.Sha256)

	// B cannot read A's export.
	tb, err := s.DB.LoadTenant(ctx, uuid.MustParse(b.ID))
	require.NoError(t, err)
	err = s.DB.InTenant(tenancy.NewContext(ctx, tb), func(q *dbsqlc.Queries) error {
		_, err := q.TenantExportArchive(ctx, dbsqlc.TenantExportArchiveParams{TenantID: aID, ID: exportID})
		return err
	})
	require.ErrorContains(t, err, "not found")
}

// TestExportImportRoundTrip: a tenant exported, imported into an empty
// database and exported there again gives the same files, table by
// table (the same rows, column for column).
func TestExportImportRoundTrip(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	fill(t, a, 2)
	_, err := a.Members.InviteMember(ctx, connect.NewRequest(&quartersv1.InviteMemberRequest{Email: "new@x.example", Role: quartersv1.Role_ROLE_MEMBER}))
	require.NoError(t, err)
	aID := uuid.MustParse(a.ID)

	exportFrom := func(d *db.DB) []byte {
		tn, err := d.LoadTenant(ctx, aID)
		require.NoError(t, err)
		tctx := tenancy.NewContext(ctx, tn)
		var id uuid.UUID
		require.NoError(t, d.InTenant(tctx, func(q *dbsqlc.Queries) error {
			e, err := q.TenantExportInsert(ctx, aID)
			id = e.ID
			return err
		}))
		require.NoError(t, export.Run(tctx, d, id))
		var row dbsqlc.TenantExportArchiveRow
		require.NoError(t, d.InTenant(tctx, func(q *dbsqlc.Queries) error {
			row, err = q.TenantExportArchive(ctx, dbsqlc.TenantExportArchiveParams{TenantID: aID, ID: id})
			return err
		}))
		return row.Archive
	}
	first := exportFrom(s.DB)

	appURL, ownerURL := dbtest.NewURLs(t)
	owner, err := pgx.Connect(ctx, ownerURL)
	require.NoError(t, err)
	defer owner.Close(ctx)
	tx, err := owner.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "select set_config('app.tenant_id', $1, true)", a.ID)
	require.NoError(t, err)
	m1, err := export.Import(ctx, tx, first)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))

	d2, err := db.Open(ctx, appURL, nil)
	require.NoError(t, err)
	defer d2.Close()
	second := exportFrom(d2)
	files1, files2 := unpack(t, first), unpack(t, second)
	var m2 export.Manifest
	require.NoError(t, json.Unmarshal(files2[export.ManifestFile], &m2))
	require.Equal(t, len(m1.Tables), len(m2.Tables))
	rows := 0
	for i, tb := range m1.Tables {
		require.Equal(t, tb, m2.Tables[i], "table %s round-trips", tb.Name)
		require.Equal(t, string(files1[tb.File]), string(files2[tb.File]))
		rows += tb.Rows
	}
	require.Greater(t, rows, 8)

	// A file that does not match its manifest is refused.
	tx, err = owner.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, f := range files1 {
		if name == "projects.ndjson" {
			f = append([]byte(nil), f...)
			f[len(f)-2] = 'X'
		}
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(f))}))
		_, err := tw.Write(f)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	_, err = export.Import(ctx, tx, buf.Bytes())
	require.ErrorContains(t, err, "projects.ndjson does not match the manifest")
}
