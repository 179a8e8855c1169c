package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
)

// tenantKey is a seeded tenant and the header value that authenticates as it.
type tenantKey struct {
	id     string
	bearer string // "Bearer <api_key_secret>"
}

// seed creates the tenants and their projects through the API (so keys
// and tenants are exactly what sign-up makes), then bulk-inserts their
// documents in SQL, which is orders of magnitude faster than 100k
// CreateDocument calls and is not what we measure.
func seed(ctx context.Context, o options, client *http.Client, baseURL, ownerURL, slugPrefix string, copts []connect.ClientOption) ([]tenantKey, error) {
	t0 := time.Now()
	tenantSvc := quartersv1connect.NewTenantServiceClient(client, baseURL, copts...)

	tenants := make([]tenantKey, o.tenants)
	var (
		next     atomic.Int64 // index of the next tenant to create
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for range min(o.seedWorkers, o.tenants) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= o.tenants || sctx.Err() != nil {
					return
				}
				slug := fmt.Sprintf("%s-%05d", slugPrefix, i+1)
				tr, err := tenantSvc.CreateTenant(sctx, connect.NewRequest(&quartersv1.CreateTenantRequest{
					Slug: slug, Name: "Bench " + slug, OwnerEmail: "owner@" + slug + ".example.com",
				}))
				if err != nil {
					fail(fmt.Errorf("CreateTenant %s: %w", slug, err))
					return
				}
				// No authenticated call yet: the server caches a tenant's
				// record (plan, limits) on its first one, and the limits
				// are lifted in SQL below, before that happens.
				tenants[i] = tenantKey{id: tr.Msg.GetTenant().GetId(), bearer: "Bearer " + tr.Msg.GetApiKeySecret()}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	apiTime := time.Since(t0)

	t1 := time.Now()
	conn, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		return nil, fmt.Errorf("connect as owner: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ids := make([]string, len(tenants))
	for i, t := range tenants {
		ids[i] = t.id
	}
	if err := seedRows(ctx, conn, ids, o.docs); err != nil {
		return nil, err
	}
	docTime := time.Since(t1)
	t2 := time.Now()
	// Fresh statistics, so the planner sees 100k rows and picks the list
	// index as it would on a real database, not plans for empty tables.
	if _, err := conn.Exec(ctx, "ANALYZE tenants, api_keys, projects, documents"); err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	fmt.Printf("seeded %d tenants via the API in %s (%.0f tenants/s); projects, lifted limits and %d documents in SQL in %s; ANALYZE in %s; total %s\n",
		o.tenants, round(apiTime), float64(o.tenants)/apiTime.Seconds(),
		o.tenants*o.docs, round(docTime), round(time.Since(t2)), round(time.Since(t0)))
	return tenants, nil
}

// insertDocumentsSQL gives each of the tenants' projects n documents with
// distinct create_time values (so the newest-first order and page cursors
// are well defined) and about 200 bytes of content that differs per row
// (so compression is not flattered by identical rows).
// seedSQL runs as the owner for tenants $1 with $2 documents each. The
// project is made here rather than through the API for the reason given in
// seed; the overrides lift the plan's rate limit and monthly quota, since
// the load test measures the server, not its refusals (the limiter still
// runs on every call: -ratelimit=off removes it, to compare).
var seedSQL = []string{
	`INSERT INTO projects (tenant_id, name)
SELECT t, 'Bench project' FROM unnest($1::uuid[]) AS t WHERE $2::int >= 0`,
	`INSERT INTO tenant_overrides (tenant_id, requests_per_minute, burst, max_api_calls_per_month)
SELECT t, 1000000, 100000, 1000000000000 FROM unnest($1::uuid[]) AS t WHERE $2::int >= 0`,
	insertDocumentsSQL,
}

const insertDocumentsSQL = `
INSERT INTO documents (tenant_id, project_id, title, content, create_time, update_time)
SELECT p.tenant_id, p.id, 'Document ' || g,
       left(repeat(md5(p.id::text || ':' || g), 7), 200),
       now() - g * interval '1 second', now() - g * interval '1 second'
FROM projects p CROSS JOIN generate_series(1, $2::int) AS g
WHERE p.tenant_id = ANY ($1::uuid[])`

// seedRows runs seedSQL through the owner connection. A superuser (the
// embedded cluster's postgres) or BYPASSRLS role skips row-level security,
// so one statement seeds every tenant. An ordinary owner is subject to the
// forced tenant_isolation policies, so it must name each tenant in turn;
// a pipelined batch in one transaction keeps that reasonably quick.
func seedRows(ctx context.Context, conn *pgx.Conn, tenantIDs []string, n int) error {
	var bypass bool
	if err := conn.QueryRow(ctx,
		"SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user").Scan(&bypass); err != nil {
		return fmt.Errorf("check owner role: %w", err)
	}
	if bypass {
		for _, q := range seedSQL {
			if _, err := conn.Exec(ctx, q, tenantIDs, n); err != nil {
				return fmt.Errorf("seed: %w", err)
			}
		}
		return nil
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var b pgx.Batch
		for _, id := range tenantIDs {
			// is_local: the setting ends with the transaction, like
			// the server's own.
			b.Queue("SELECT set_config('app.tenant_id', $1, true)", id)
			for _, q := range seedSQL {
				b.Queue(q, []string{id}, n)
			}
		}
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return fmt.Errorf("insert documents: %w", err)
		}
		return nil
	})
}
