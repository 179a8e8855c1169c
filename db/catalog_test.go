package db_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db/dbtest"
)

// TestCatalog fails the build if the schema lets a tenant's rows escape
// row-level security: every table with a tenant_id column (and tenants
// itself, and users, shared between tenants) must have RLS enabled and
// forced and a policy; every view must be
// security_invoker; the app role must not bypass RLS or own anything; and
// the only SECURITY DEFINER functions are the named lookups of lookup.go
// and identity.go (and the purge of a deleted tenant, whose certificate
// no tenant may read).
func TestCatalog(t *testing.T) {
	t.Parallel()
	appURL, ownerURL := dbtest.NewURLs(t)
	conn, err := pgx.Connect(ctx, ownerURL)
	require.NoError(t, err)
	defer conn.Close(ctx)

	type table struct {
		Name                 string
		Enabled, Forced      bool
		Policies             int
		PolicyUsesTenantFunc bool
	}
	rows, err := conn.Query(ctx, `
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
  (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)::int,
  EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polcmd = '*'
    AND pg_get_expr(p.polqual, p.polrelid) LIKE '%app.current_tenant_id()%'
    AND pg_get_expr(p.polwithcheck, p.polrelid) LIKE '%app.current_tenant_id()%')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND (c.relname IN ('tenants', 'users') OR EXISTS (
    SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped))
ORDER BY 1`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowToStructByPos[table])
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(tables), 8, "expected tenants, users, memberships, api_keys, projects, documents at least")
	for _, tb := range tables {
		require.True(t, tb.Enabled, "%s: row level security not enabled", tb.Name)
		require.True(t, tb.Forced, "%s: row level security not forced", tb.Name)
		require.True(t, tb.PolicyUsesTenantFunc, "%s: no USING + WITH CHECK policy on app.current_tenant_id()", tb.Name)
	}

	// Tenant tables lead their primary key with tenant_id.
	var badPK []string
	rows, err = conn.Query(ctx, `
SELECT c.relname FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
WHERE i.indisprimary AND c.relname <> 'tenants'
  AND EXISTS (SELECT 1 FROM pg_attribute t WHERE t.attrelid = c.oid AND t.attname = 'tenant_id')
  AND a.attname <> 'tenant_id'`)
	require.NoError(t, err)
	badPK, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Empty(t, badPK, "primary keys not led by tenant_id")

	var views []string
	rows, err = conn.Query(ctx, `
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'v' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND NOT coalesce('security_invoker=true' = ANY (c.reloptions), false)
  -- An extension's own views (Citus's citus_tables) are not ours.
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`)
	require.NoError(t, err)
	views, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Empty(t, views, "views without security_invoker")

	rows, err = conn.Query(ctx, `
SELECT n.nspname || '.' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`)
	require.NoError(t, err)
	definers, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	want := []string{
		"app.api_key_authenticate",
		"app.cost_flush",
		"app.email_token_issue",
		"app.invitation_tenant",
		"app.platform_audit_event_list",
		"app.platform_tenant_cost_list",
		"app.platform_tenant_list",
		"app.refresh_token_tenant",
		"app.tenant_deletion_certificate",
		"app.tenant_purge",
		"app.tenant_resolve",
		"app.usage_flush",
		"app.user_credentials",
		"app.user_ensure",
		"app.user_password_change",
		"app.user_password_reset",
		"app.user_sign_out_everywhere",
		"app.user_tenants",
		"app.user_verify_email",
	}
	if dbtest.Citus() {
		// db.MigrateCitus adds the shard operations of db/lookup.go.
		want = append(want[:1], append([]string{"app.citus_tenant_isolate", "app.citus_tenant_move"}, want[1:]...)...)
	}
	require.Equal(t, want, definers, "SECURITY DEFINER functions must be the privileged lookups of db/lookup.go and db/identity.go, and db/usageflush.go and db/costflush.go")

	// email_tokens and tenant_deletion_certificates belong to no tenant
	// and the app role reaches them only through the functions above: RLS
	// forced, and no privilege at all.
	for _, table := range []string{"email_tokens", "tenant_deletion_certificates"} {
		var rls, forced, appPrivileged bool
		require.NoError(t, conn.QueryRow(ctx, `
SELECT c.relrowsecurity, c.relforcerowsecurity,
  has_table_privilege('quarters_app', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
FROM pg_class c WHERE c.relname = $1`, table).Scan(&rls, &forced, &appPrivileged))
		require.True(t, rls && forced, "%s: row level security not enabled and forced", table)
		require.False(t, appPrivileged, "%s: the app role must not touch it directly", table)
	}

	app, err := pgx.Connect(ctx, appURL)
	require.NoError(t, err)
	defer app.Close(ctx)
	var super, bypass bool
	require.NoError(t, app.QueryRow(ctx, "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user").Scan(&super, &bypass))
	require.False(t, super)
	require.False(t, bypass)
}
