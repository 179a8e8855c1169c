package db

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// CitusOpts tunes MigrateCitus; nil means defaults.
type CitusOpts struct {
	// ShardCount is the number of shards of the tenant tables' colocation
	// group when it is created (default 32, Citus's own default). Later
	// runs add tables to the existing group, whatever its count.
	ShardCount int
}

// ErrNoCitus means the database has no Citus extension: MigrateCitus and
// the shard operations need one.
var ErrNoCitus = errors.New("the database is not a Citus coordinator (no citus extension)")

// citusTenantsTable is the table every tenant table references. It is a
// reference table, not a distributed one: tenants are few and read on
// every request, and only a reference table keeps the slug unique across
// tenants (Citus enforces uniqueness only per shard, so a unique
// constraint must include the distribution column).
const citusTenantsTable = "tenants"

// citusPolicyRewrite is what pg_get_expr prints for the policies'
// `(SELECT app.current_tenant_id())`, and what replaces it on Citus, which
// refuses policies with subqueries on distributed tables. Without the
// subquery the STABLE function is still compared as a constant, so the
// planner uses the tenant_id indexes as before.
var citusPolicyRewrite = [2]string{"( SELECT app.current_tenant_id() AS current_tenant_id)", "app.current_tenant_id()"}

// MigrateCitus converts a migrated schema (Migrate first) into Citus
// tables, on a coordinator whose workers are already added
// (citus_add_node) and which is itself in the metadata
// (citus_set_coordinator_host), as local tables that reference reference
// tables need. The conversion reads the catalog rather than a list:
//
//   - every table of schema public with a tenant_id column becomes a
//     distributed table on tenant_id, all in one colocation group, so a
//     tenant's rows of every table are on the same shard;
//   - tenants, and every table without tenant_id that a converted table
//     references (plans, users), become reference tables, copied to every
//     node;
//   - every other table (River's queue, tern's version table, e-mail
//     tokens, token keys) stays a local table of the coordinator; Citus
//     itself turns one with a foreign key to a reference table into a
//     "Citus local table";
//   - unique constraints of tenant tables that do not include tenant_id
//     (the secret and token hashes) become unique per tenant, with a plain
//     index on the hash for the pre-tenant lookups: Citus cannot enforce
//     uniqueness across shards. The hashes are of 160-bit or longer random
//     secrets, so no two tenants' ever collide;
//   - the row-level security policies lose their subquery (Citus refuses
//     subqueries in policies), and the functions they call are created on
//     every node (create_distributed_function), so each shard enforces
//     its policy on the worker that holds it.
//
// Grants, ENABLE/FORCE ROW LEVEL SECURITY and the policies are carried to
// the shards by Citus. MigrateCitus runs in one transaction and is
// idempotent: tables already converted are left as they are, so running it
// again after a migration that added a table converts just that table. It
// returns ErrNoCitus (wrapped) on a database without the extension.
func MigrateCitus(ctx context.Context, ownerURL string, opts *CitusOpts) (err error) {
	shardCount := 32
	if opts != nil && opts.ShardCount > 0 {
		shardCount = opts.ShardCount
	}
	conn, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		return fmt.Errorf("connect as owner: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var hasCitus, hasCoordinator bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')`).Scan(&hasCitus); err != nil {
		return fmt.Errorf("look up citus extension: %w", err)
	}
	if !hasCitus {
		return fmt.Errorf("citus migrate: %w: CREATE EXTENSION citus on the coordinator and every worker first", ErrNoCitus)
	}
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_dist_node WHERE groupid = 0)`).Scan(&hasCoordinator); err != nil {
		return fmt.Errorf("look up coordinator: %w", err)
	}
	if !hasCoordinator {
		return errors.New("citus migrate: the coordinator is not in the Citus metadata: run SELECT citus_set_coordinator_host('<host>', <port>) on it first " +
			"(local tables with foreign keys to reference tables need it)")
	}

	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	for _, s := range []string{
		"SELECT pg_advisory_xact_lock(hashtextextended('quarters.citus_migrate', 0))",
		// One connection per node for the whole transaction: DDL on
		// reference tables and on their referencing shards may not
		// run over parallel connections in one transaction.
		"SET LOCAL citus.multi_shard_modify_mode TO 'sequential'",
		fmt.Sprintf("SET LOCAL citus.shard_count TO %d", shardCount),
	} {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("citus migrate: %s: %w", s, err)
		}
	}

	if _, err := tx.Exec(ctx, citusShardFunctions); err != nil {
		return fmt.Errorf("citus migrate: shard functions: %w", err)
	}
	plan, err := citusPlan(ctx, tx)
	if err != nil {
		return err
	}
	if len(plan.distribute) == 0 && len(plan.reference) == 0 {
		return tx.Commit(ctx)
	}
	converting := slices.Concat(plan.distribute, plan.reference)

	// Functions the policies call, on every node.
	rows, err := tx.Query(ctx, `
SELECT DISTINCT d.refobjid::regprocedure::text
FROM pg_policy p
JOIN pg_depend d ON d.classid = 'pg_policy'::regclass AND d.objid = p.oid AND d.refclassid = 'pg_proc'::regclass
WHERE p.polrelid::regclass::text = ANY ($1)
  AND NOT EXISTS (SELECT 1 FROM pg_dist_object o WHERE o.classid = 'pg_proc'::regclass AND o.objid = d.refobjid)`, converting)
	if err != nil {
		return fmt.Errorf("citus migrate: policy functions: %w", err)
	}
	funcs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("citus migrate: policy functions: %w", err)
	}
	for _, f := range funcs {
		if _, err := tx.Exec(ctx, "SELECT create_distributed_function($1)", f); err != nil {
			return fmt.Errorf("citus migrate: create_distributed_function(%s): %w", f, err)
		}
	}

	if err := citusFunctions(ctx, tx); err != nil {
		return err
	}
	if err := citusLockableReferences(ctx, tx, plan.reference); err != nil {
		return err
	}
	if err := citusUniqueConstraints(ctx, tx, plan.distribute); err != nil {
		return err
	}
	if err := citusPolicies(ctx, tx, converting); err != nil {
		return err
	}

	// Foreign keys go while the tables change kind (Citus refuses to
	// distribute a table that a local table references), then come back
	// with the same names and definitions, which Citus then checks against
	// its rules (tenant_id in keys between distributed tables).
	rows, err = tx.Query(ctx, `
SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.confrelid::regclass::text
FROM pg_constraint c
WHERE c.contype = 'f' AND (c.conrelid::regclass::text = ANY ($1) OR c.confrelid::regclass::text = ANY ($1))
ORDER BY 1, 2`, converting)
	if err != nil {
		return fmt.Errorf("citus migrate: foreign keys: %w", err)
	}
	type fk struct{ table, name, def, refs string }
	fks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fk, error) {
		var k fk
		err := r.Scan(&k.table, &k.name, &k.def, &k.refs)
		return k, err
	})
	if err != nil {
		return fmt.Errorf("citus migrate: foreign keys: %w", err)
	}
	for _, k := range fks {
		if _, err := tx.Exec(ctx, "ALTER TABLE "+k.table+" DROP CONSTRAINT "+pgx.Identifier{k.name}.Sanitize()); err != nil {
			return fmt.Errorf("citus migrate: drop foreign key %s of %s: %w", k.name, k.table, err)
		}
	}

	for _, t := range plan.reference {
		if _, err := tx.Exec(ctx, "SELECT create_reference_table($1)", t); err != nil {
			return fmt.Errorf("citus migrate: create_reference_table(%s): %w", t, err)
		}
	}
	anchor := plan.anchor
	for _, t := range plan.distribute {
		colocate := "none"
		if anchor != "" {
			colocate = anchor
		}
		if _, err := tx.Exec(ctx, "SELECT create_distributed_table($1, 'tenant_id', colocate_with => $2)", t, colocate); err != nil {
			return fmt.Errorf("citus migrate: create_distributed_table(%s): %w", t, err)
		}
		if anchor == "" {
			anchor = t
		}
	}

	for _, k := range fks {
		if citusUnlinked[k.refs] && slices.Contains(plan.distribute, k.table) {
			continue
		}
		if _, err := tx.Exec(ctx, "ALTER TABLE "+k.table+" ADD CONSTRAINT "+pgx.Identifier{k.name}.Sanitize()+" "+k.def); err != nil {
			return fmt.Errorf("citus migrate: foreign key %s of %s (%s): %w", k.name, k.table, k.def, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("citus migrate: commit: %w", err)
	}
	return nil
}

// citusUnlinked are reference tables whose foreign keys from distributed
// tables are not restored. users is written only by SECURITY DEFINER
// functions (app.user_ensure), that is as the owner, over the owner's own
// connections to the workers; a membership inserted next in the same
// transaction travels over the app role's connection, where the new user
// row is not yet visible, and its foreign key check fails. Users are never
// deleted, so only the check that a membership's user exists is lost (the
// ids come from app.user_ensure); README, Running on Citus, lists it.
var citusUnlinked = map[string]bool{"users": true}

// citusConversion is what MigrateCitus has left to do.
type citusConversion struct {
	distribute []string // tenant tables not yet distributed, by name
	reference  []string // tables to make reference tables, by name
	anchor     string   // an already distributed tenant table, or ""
}

// citusPlan classifies the tables of schema public from the catalog.
func citusPlan(ctx context.Context, tx pgx.Tx) (citusConversion, error) {
	var p citusConversion
	rows, err := tx.Query(ctx, `
SELECT c.relname,
  EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped),
  coalesce((SELECT d.partmethod::text FROM pg_dist_partition d WHERE d.logicalrelid = c.oid), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname`)
	if err != nil {
		return p, fmt.Errorf("citus migrate: tables: %w", err)
	}
	type table struct {
		name      string
		hasTenant bool
		method    string // pg_dist_partition.partmethod: h distributed, n reference or Citus local, "" local
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
		var t table
		err := r.Scan(&t.name, &t.hasTenant, &t.method)
		return t, err
	})
	if err != nil {
		return p, fmt.Errorf("citus migrate: tables: %w", err)
	}
	// Reference tables already made, and Citus local tables (which are
	// partmethod n too): told apart by pg_dist_partition.repmodel.
	rows, err = tx.Query(ctx, `SELECT logicalrelid::regclass::text FROM pg_dist_partition WHERE partmethod = 'n' AND repmodel = 't'`)
	if err != nil {
		return p, fmt.Errorf("citus migrate: reference tables: %w", err)
	}
	refs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return p, fmt.Errorf("citus migrate: reference tables: %w", err)
	}

	wantRef := map[string]bool{citusTenantsTable: true}
	for _, t := range tables {
		switch {
		case t.name == citusTenantsTable:
		case t.hasTenant && t.method == "h":
			if p.anchor == "" {
				p.anchor = t.name
			}
		case t.hasTenant && t.method == "":
			p.distribute = append(p.distribute, t.name)
		case t.hasTenant:
			return p, fmt.Errorf("citus migrate: tenant table %s is already a Citus table of method %q, not distributed by tenant_id", t.name, t.method)
		}
	}
	// Tables that a tenant or reference table references must be
	// reference tables themselves (Citus allows foreign keys from
	// distributed and reference tables to reference tables only): the
	// closure over the foreign keys.
	rows, err = tx.Query(ctx, `
SELECT c.conrelid::regclass::text, c.confrelid::regclass::text
FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
WHERE c.contype = 'f' AND n.nspname = 'public'`)
	if err != nil {
		return p, fmt.Errorf("citus migrate: foreign keys: %w", err)
	}
	type edge struct{ from, to string }
	edges, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (edge, error) {
		var e edge
		err := r.Scan(&e.from, &e.to)
		return e, err
	})
	if err != nil {
		return p, fmt.Errorf("citus migrate: foreign keys: %w", err)
	}
	tenantTable := map[string]bool{}
	for _, t := range tables {
		if t.hasTenant && t.name != citusTenantsTable {
			tenantTable[t.name] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for _, e := range edges {
			if (tenantTable[e.from] || wantRef[e.from]) && !tenantTable[e.to] && !wantRef[e.to] {
				wantRef[e.to] = true
				changed = true
			}
		}
	}
	for _, t := range tables {
		if wantRef[t.name] && !slices.Contains(refs, t.name) {
			p.reference = append(p.reference, t.name)
		}
	}
	return p, nil
}

// citusNowVar replaces now() in the functions citusFunctions rewrites.
const citusNowVar = "citus_now"

// citusFunctions rewrites the privileged functions of schema app that
// read or write tables (their bodies name public.*) into forms Citus can
// run on the coordinator:
//
//   - LANGUAGE sql bodies become PL/pgSQL (RETURN QUERY, or SELECT INTO
//     for one value): Citus cannot plan the statements of an SQL function
//     that use its parameters ("could not create distributed plan");
//   - now() becomes a variable set to now() on entry, the same value
//     (now() is the transaction's start): Citus refuses non-immutable
//     functions inside COALESCE and CASE in writes, such as
//     coalesce(email_verify_time, now()), and a variable is a parameter
//     it evaluates once.
//
// A rewritten function is marked by the variable, so a second run leaves
// it alone. Only single-statement SQL bodies are rewritten; anything else
// is an error that names the function.
func citusFunctions(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `
SELECT p.oid::regprocedure::text, l.lanname, p.prosrc, pg_get_functiondef(p.oid), p.proretset,
  format_type(p.prorettype, NULL)
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.pronamespace = 'app'::regnamespace AND p.prokind = 'f'
  AND l.lanname IN ('sql', 'plpgsql') AND p.prosrc LIKE '%public.%' AND p.prosrc NOT LIKE '%' || $1 || '%'
ORDER BY 1`, citusNowVar)
	if err != nil {
		return fmt.Errorf("citus migrate: functions: %w", err)
	}
	type fn struct {
		name, lang, src, def, ret string
		retset                    bool
	}
	fns, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fn, error) {
		var f fn
		err := r.Scan(&f.name, &f.lang, &f.src, &f.def, &f.retset, &f.ret)
		return f, err
	})
	if err != nil {
		return fmt.Errorf("citus migrate: functions: %w", err)
	}
	for _, f := range fns {
		if f.lang == "plpgsql" && !strings.Contains(f.src, "now()") {
			continue
		}
		body := strings.ReplaceAll(f.src, "now()", citusNowVar)
		var src string
		switch {
		case f.lang == "plpgsql":
			// The original block nested in one that declares the
			// variable; its RETURNs still return from the function.
			src = "\nDECLARE " + citusNowVar + " timestamptz := now();\nBEGIN\n" + strings.TrimRight(strings.TrimSpace(body), ";") + ";\nEND\n"
		default:
			stmt := strings.TrimRight(strings.TrimSpace(body), "; \n\t")
			if strings.Contains(stmt, ";") {
				return fmt.Errorf("citus migrate: function %s: only single-statement SQL functions can be rewritten for Citus", f.name)
			}
			switch {
			case f.retset:
				src = "\n#variable_conflict use_column\nDECLARE " + citusNowVar + " timestamptz := now();\nBEGIN\nRETURN QUERY " + stmt + ";\nEND\n"
			case f.ret == "void":
				src = "\nDECLARE " + citusNowVar + " timestamptz := now();\nBEGIN\n" + stmt + ";\nEND\n"
			default:
				src = "\n#variable_conflict use_column\nDECLARE " + citusNowVar + " timestamptz := now();\ncitus_result " + f.ret + ";\nBEGIN\n" +
					stmt + "\nINTO citus_result;\nRETURN citus_result;\nEND\n"
			}
		}
		i := strings.Index(f.def, "AS $function$")
		if i < 0 {
			return fmt.Errorf("citus migrate: function %s: unexpected definition", f.name)
		}
		head := strings.Replace(f.def[:i], " LANGUAGE sql\n", " LANGUAGE plpgsql\n", 1)
		def := head + "AS $citus$" + src + "$citus$"
		if _, err := tx.Exec(ctx, def); err != nil {
			return fmt.Errorf("citus migrate: rewrite function %s: %w\n%s", f.name, err, def)
		}
	}
	return nil
}

// citusAppRole is the server's role, created by migration 001.
const citusAppRole = "quarters_app"

// citusLockableReferences lets the app role lock the reference tables it
// only reads. Citus locks a reference table on every node (with
// lock_shard_resources) whenever a row that references it is written,
// and admits only roles with some write privilege on it: inserting a
// tenant, which references plans, fails with "permission denied for table
// plans" otherwise. Such a table gets row-level security with a policy
// that lets the app role read every row and nothing else, and then the
// app role UPDATE on one column, which row-level security turns into an
// update of no row. The owner, which edits the table, is not subject to
// the policy (RLS is enabled, not forced).
func citusLockableReferences(ctx context.Context, tx pgx.Tx, tables []string) error {
	rows, err := tx.Query(ctx, `
SELECT t.relname,
  coalesce((SELECT quote_ident(a.attname) FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attname <> 'update_time', a.attnum LIMIT 1), ''),
  t.relrowsecurity
FROM pg_class t
WHERE t.relname = ANY ($1) AND t.relnamespace = 'public'::regnamespace
  AND has_table_privilege($2, t.oid, 'SELECT')
  AND NOT has_table_privilege($2, t.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
  AND NOT has_any_column_privilege($2, t.oid, 'INSERT, UPDATE')
  AND EXISTS (SELECT 1 FROM pg_constraint c WHERE c.contype = 'f' AND c.confrelid = t.oid
    AND (has_table_privilege($2, c.conrelid, 'INSERT, UPDATE') OR has_any_column_privilege($2, c.conrelid, 'INSERT, UPDATE')))
ORDER BY 1`, tables, citusAppRole)
	if err != nil {
		return fmt.Errorf("citus migrate: read-only reference tables: %w", err)
	}
	type ro struct {
		table, column string
		rls           bool
	}
	ros, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ro, error) {
		var x ro
		err := r.Scan(&x.table, &x.column, &x.rls)
		return x, err
	})
	if err != nil {
		return fmt.Errorf("citus migrate: read-only reference tables: %w", err)
	}
	for _, x := range ros {
		if x.rls {
			// A policy of its own may not admit every row to the app
			// role; that table needs a decision this code cannot make.
			return fmt.Errorf("citus migrate: reference table %s has row-level security and only SELECT for %s: grant it a write privilege Citus can lock with", x.table, citusAppRole)
		}
		t := pgx.Identifier{x.table}.Sanitize()
		for _, s := range []string{
			"ALTER TABLE " + t + " ENABLE ROW LEVEL SECURITY",
			"CREATE POLICY citus_app_read ON " + t + " FOR SELECT TO " + citusAppRole + " USING (true)",
			"GRANT UPDATE (" + x.column + ") ON " + t + " TO " + citusAppRole,
		} {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("citus migrate: %s: %w", s, err)
			}
		}
	}
	return nil
}

// citusUniqueConstraints turns each unique constraint of the tables that
// lacks tenant_id into one on (tenant_id, its columns), under the same
// name, plus a plain index on its columns for lookups that do not know the
// tenant yet.
func citusUniqueConstraints(ctx context.Context, tx pgx.Tx, tables []string) error {
	rows, err := tx.Query(ctx, `
SELECT c.conrelid::regclass::text, c.conname,
  array(SELECT quote_ident(a.attname) FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i)
FROM pg_constraint c
WHERE c.contype IN ('u', 'p') AND c.conrelid::regclass::text = ANY ($1)
  AND NOT EXISTS (SELECT 1 FROM unnest(c.conkey) k(n)
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n WHERE a.attname = 'tenant_id')
ORDER BY 1, 2`, tables)
	if err != nil {
		return fmt.Errorf("citus migrate: unique constraints: %w", err)
	}
	type uc struct {
		table, name string
		cols        []string
	}
	ucs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (uc, error) {
		var u uc
		err := r.Scan(&u.table, &u.name, &u.cols)
		return u, err
	})
	if err != nil {
		return fmt.Errorf("citus migrate: unique constraints: %w", err)
	}
	// Unique indexes that are not constraints (expression or partial
	// indexes) cannot be rewritten this way; say which.
	var bad []string
	if err := tx.QueryRow(ctx, `
SELECT coalesce(array_agg(i.indexrelid::regclass::text ORDER BY 1), '{}')
FROM pg_index i
WHERE i.indisunique AND i.indrelid::regclass::text = ANY ($1)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
  AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey) k(n)
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n WHERE a.attname = 'tenant_id')`, tables).Scan(&bad); err != nil {
		return fmt.Errorf("citus migrate: unique indexes: %w", err)
	}
	if len(bad) > 0 {
		return fmt.Errorf("citus migrate: unique indexes without tenant_id cannot be distributed: %s", strings.Join(bad, ", "))
	}
	for _, u := range ucs {
		name := pgx.Identifier{u.name}.Sanitize()
		cols := strings.Join(u.cols, ", ")
		for _, s := range []string{
			"ALTER TABLE " + u.table + " DROP CONSTRAINT " + name,
			"ALTER TABLE " + u.table + " ADD CONSTRAINT " + name + " UNIQUE (tenant_id, " + cols + ")",
			"CREATE INDEX " + pgx.Identifier{u.name + "_lookup"}.Sanitize() + " ON " + u.table + " (" + cols + ")",
		} {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("citus migrate: %s: %w", s, err)
			}
		}
	}
	return nil
}

// citusPolicyReplacements are the policies whose subquery cannot be
// rewritten away, with what replaces them on Citus (USING and WITH
// CHECK), keyed by table.policy. users (a reference table) shows a user
// only to tenants the user is a member of, through a subquery on
// memberships, a distributed table: Citus refuses subqueries in policies,
// and the check cannot run on a worker's copy of users anyway (a query on
// a shard may not start a distributed query). On Citus a transaction
// acting for any tenant may read users rows; with no tenant none. The
// server reaches users only through the tenant's memberships (a join) or
// by the signed-in user's own id. README, Running on Citus, lists this.
var citusPolicyReplacements = map[string]string{
	"users.tenant_isolation": "app.current_tenant_id() IS NOT NULL",
}

// citusPolicies rewrites the tables' policies without the subquery Citus
// refuses, and fails on any other subquery.
func citusPolicies(ctx context.Context, tx pgx.Tx, tables []string) error {
	rows, err := tx.Query(ctx, `
SELECT p.polrelid::regclass::text, p.polname,
  coalesce(pg_get_expr(p.polqual, p.polrelid), ''), coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
FROM pg_policy p WHERE p.polrelid::regclass::text = ANY ($1) ORDER BY 1, 2`, tables)
	if err != nil {
		return fmt.Errorf("citus migrate: policies: %w", err)
	}
	type policy struct{ table, name, using, check string }
	pols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (policy, error) {
		var p policy
		err := r.Scan(&p.table, &p.name, &p.using, &p.check)
		return p, err
	})
	if err != nil {
		return fmt.Errorf("citus migrate: policies: %w", err)
	}
	for _, p := range pols {
		using := strings.ReplaceAll(p.using, citusPolicyRewrite[0], citusPolicyRewrite[1])
		check := strings.ReplaceAll(p.check, citusPolicyRewrite[0], citusPolicyRewrite[1])
		if r, ok := citusPolicyReplacements[p.table+"."+p.name]; ok && using != r {
			using, check = r, r
		}
		if using == p.using && check == p.check {
			continue
		}
		if strings.Contains(strings.ToUpper(using+check), "SELECT") {
			return fmt.Errorf("citus migrate: policy %s on %s has a subquery Citus cannot distribute: USING (%s) WITH CHECK (%s)", p.name, p.table, p.using, p.check)
		}
		s := "ALTER POLICY " + pgx.Identifier{p.name}.Sanitize() + " ON " + p.table
		if using != "" {
			s += " USING (" + using + ")"
		}
		if check != "" {
			s += " WITH CHECK (" + check + ")"
		}
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("citus migrate: %s: %w", s, err)
		}
	}
	return nil
}

// citusShardFunctions are the operator's shard operations
// (PlatformService.IsolateTenant and MoveTenant), as functions of the
// owner's (SECURITY DEFINER), which owns the tables Citus's functions
// require, granted to the app role like the platform lookups, and like
// them refusing to run inside a tenant's transaction. Both run while the
// tenants' calls go on, with shard_transfer_mode block_writes: reads
// continue, and writes to the shards being copied wait (they do not
// fail) until the copy ends. The logical-replication modes (auto,
// force_logical), which pause writes only for the switch, deadlocked in
// TestCitusIsolateAndMoveOnline: creating the replication slot waits for
// the transactions open on the worker, and a multi-statement tenant
// transaction open there waits on the coordinator for the operation's
// lock, a cycle Citus's deadlock detector does not see.
const citusShardFunctions = `
CREATE OR REPLACE FUNCTION app.citus_tenant_anchor() RETURNS regclass
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT p.logicalrelid FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
  WHERE p.partmethod = 'h' AND c.relnamespace = 'public'::regnamespace
    AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
  ORDER BY c.relname LIMIT 1
$$;
REVOKE ALL ON FUNCTION app.citus_tenant_anchor() FROM PUBLIC;

-- citus_tenant_isolate gives the tenant shards of its own (one per
-- distributed table, all colocated) and returns the anchor table's new
-- shard id. A tenant already alone in its shards is left as it is.
CREATE OR REPLACE FUNCTION app.citus_tenant_isolate(p_tenant uuid) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_rel regclass := app.citus_tenant_anchor();
  v_shard bigint;
BEGIN
  IF (SELECT app.current_tenant_id()) IS NOT NULL THEN
    RAISE EXCEPTION 'shard operations run outside a tenant''s transaction' USING ERRCODE = '42501';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM public.tenants WHERE id = p_tenant) THEN
    RAISE EXCEPTION 'tenant not found' USING ERRCODE = 'P0002';
  END IF;
  v_shard := get_shard_id_for_distribution_column(v_rel, p_tenant);
  IF EXISTS (SELECT 1 FROM pg_dist_shard WHERE shardid = v_shard AND shardminvalue = shardmaxvalue) THEN
    RETURN v_shard;
  END IF;
  RETURN isolate_tenant_to_new_shard(v_rel, p_tenant, 'CASCADE', shard_transfer_mode => 'block_writes');
END
$$;
REVOKE ALL ON FUNCTION app.citus_tenant_isolate(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.citus_tenant_isolate(uuid) TO quarters_app;

-- citus_tenant_move moves the shards holding the tenant (with every
-- tenant that shares them: isolate it first to move it alone) to the
-- worker p_host:p_port, and returns whether anything moved (false: they
-- are there already).
CREATE OR REPLACE FUNCTION app.citus_tenant_move(p_tenant uuid, p_host text, p_port integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_rel regclass := app.citus_tenant_anchor();
  v_shard bigint;
  v_host text;
  v_port integer;
BEGIN
  IF (SELECT app.current_tenant_id()) IS NOT NULL THEN
    RAISE EXCEPTION 'shard operations run outside a tenant''s transaction' USING ERRCODE = '42501';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM public.tenants WHERE id = p_tenant) THEN
    RAISE EXCEPTION 'tenant not found' USING ERRCODE = 'P0002';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_dist_node WHERE nodename = p_host AND nodeport = p_port
      AND isactive AND noderole = 'primary' AND shouldhaveshards) THEN
    RAISE EXCEPTION 'node %:% is not an active worker of this cluster', p_host, p_port USING ERRCODE = '22023';
  END IF;
  v_shard := get_shard_id_for_distribution_column(v_rel, p_tenant);
  SELECT n.nodename, n.nodeport INTO v_host, v_port
  FROM pg_dist_placement p JOIN pg_dist_node n ON n.groupid = p.groupid
  WHERE p.shardid = v_shard LIMIT 1;
  IF v_host = p_host AND v_port = p_port THEN
    RETURN false;
  END IF;
  PERFORM citus_move_shard_placement(v_shard, v_host, v_port, p_host, p_port, shard_transfer_mode => 'block_writes');
  RETURN true;
END
$$;
REVOKE ALL ON FUNCTION app.citus_tenant_move(uuid, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.citus_tenant_move(uuid, text, integer) TO quarters_app;
`
