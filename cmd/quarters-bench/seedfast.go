package main

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/quarters-dev/quarters/internal/auth"
)

// seedFast creates n tenants, each with an admin API key, one project,
// lifted limits and docs documents, all in SQL as the owner (a superuser
// on the embedded cluster, so row-level security does not apply), which
// takes seconds for 100,000 tenants where the API takes minutes. The keys
// are made as the server makes them (auth.NewAPIKey: the hash is stored,
// the secret returned). It also writes bench_tenants (n, id), from which
// pgbench's script picks a tenant by number.
func seedFast(ctx context.Context, ownerURL string, n, docs int) ([]tenantKey, error) {
	conn, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		return nil, fmt.Errorf("connect as owner: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tenants := make([]tenantKey, n)
	ids := make([]string, n)
	hashes := make([][]byte, n)
	prefixes := make([]string, n)
	for i := range tenants {
		secret, hash, prefix := auth.NewAPIKey()
		id := uuid.NewString()
		tenants[i] = tenantKey{id: id, bearer: "Bearer " + secret}
		ids[i], hashes[i], prefixes[i] = id, hash[:], prefix
	}
	stmts := []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO tenants (id, slug, name, owner_email)
SELECT id, 'cmp-' || n, 'Compare ' || n, 'owner@cmp-' || n || '.example.com'
FROM unnest($1::uuid[]) WITH ORDINALITY AS t (id, n)`, []any{ids}},
		{`INSERT INTO api_keys (tenant_id, name, role, secret_hash, prefix)
SELECT id, 'bench', 'admin', h, p FROM unnest($1::uuid[], $2::bytea[], $3::text[]) AS k (id, h, p)`, []any{ids, hashes, prefixes}},
		{`CREATE TABLE bench_tenants (n int PRIMARY KEY, id uuid NOT NULL)`, nil},
		{`INSERT INTO bench_tenants SELECT n, id FROM unnest($1::uuid[]) WITH ORDINALITY AS t (id, n)`, []any{ids}},
		{`GRANT SELECT ON bench_tenants TO quarters_app`, nil},
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s.sql, s.args...); err != nil {
			return nil, fmt.Errorf("seed: %w", err)
		}
	}
	// Projects, overrides and documents as the load test seeds them, in
	// slices so no statement holds millions of rows in one go.
	const chunk = 10000
	for i := 0; i < n; i += chunk {
		if err := seedRows(ctx, conn, ids[i:min(i+chunk, n)], docs); err != nil {
			return nil, err
		}
	}
	if _, err := conn.Exec(ctx, "ANALYZE"); err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	return tenants, nil
}
