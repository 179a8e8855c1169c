package export

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
)

// Import inserts the rows of an archive Write made into the database of
// tx, which must act for the archive's tenant (app.tenant_id set) as a
// role that may insert users (the schema owner: users are shared between
// tenants). It checks every file against the manifest first, and inserts
// the tables parents first, by the catalog's foreign keys. It is for
// restoring a tenant into an empty database; a row that exists already
// fails the import.
func Import(ctx context.Context, tx pgx.Tx, archive []byte) (Manifest, error) {
	files, err := untar(archive)
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	if err := json.Unmarshal(files[ManifestFile], &m); err != nil {
		return Manifest{}, fmt.Errorf("import: manifest: %w", err)
	}
	byName := map[string]Table{}
	for _, t := range m.Tables {
		f, ok := files[t.File]
		sum := sha256.Sum256(f)
		if !ok || hex.EncodeToString(sum[:]) != t.SHA256 {
			return Manifest{}, fmt.Errorf("import: %s does not match the manifest", t.File)
		}
		byName[t.Name] = t
	}
	order, err := parentsFirst(ctx, tx, m.Tables)
	if err != nil {
		return Manifest{}, err
	}
	for _, name := range order {
		t := byName[name]
		id := pgx.Identifier{name}.Sanitize()
		sql := `INSERT INTO ` + id + ` SELECT * FROM json_populate_record(null::` + id + `, $1::json)`
		sc := bufio.NewScanner(bytes.NewReader(files[t.File]))
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			if _, err := tx.Exec(ctx, sql, sc.Text()); err != nil {
				return Manifest{}, fmt.Errorf("import %s: %w", name, err)
			}
		}
		if err := sc.Err(); err != nil {
			return Manifest{}, fmt.Errorf("import %s: %w", name, err)
		}
	}
	return m, nil
}

// parentsFirst orders tables so each comes after the tables its foreign
// keys reference (among tables).
func parentsFirst(ctx context.Context, tx pgx.Tx, tables []Table) ([]string, error) {
	rows, err := tx.Query(ctx, `
SELECT c.relname::text, p.relname::text FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE k.contype = 'f' AND n.nspname = current_schema() AND c.oid <> p.oid`)
	if err != nil {
		return nil, fmt.Errorf("import: foreign keys: %w", err)
	}
	parents := map[string][]string{}
	for rows.Next() {
		var child, parent string
		if err := rows.Scan(&child, &parent); err != nil {
			return nil, fmt.Errorf("import: foreign keys: %w", err)
		}
		parents[child] = append(parents[child], parent)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("import: foreign keys: %w", err)
	}
	in := map[string]bool{}
	for _, t := range tables {
		in[t.Name] = true
	}
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string) error
	visit = func(name string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("import: foreign keys form a cycle at %s", name)
		case 2:
			return nil
		}
		state[name] = 1
		for _, p := range parents[name] {
			if in[p] {
				if err := visit(p); err != nil {
					return err
				}
			}
		}
		state[name] = 2
		order = append(order, name)
		return nil
	}
	for _, t := range tables {
		if err := visit(t.Name); err != nil {
			return nil, err
		}
	}
	return order, nil
}

func untar(archive []byte) (map[string][]byte, error) {
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("import: %s: %w", h.Name, err)
		}
		files[h.Name] = b
	}
}
