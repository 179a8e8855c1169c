-- Tenant deletion (issue 12): the owner (TenantService.DeleteTenant, with
-- the slug typed back) or the operator (PlatformService.DeleteTenant)
-- asks for it; the tenant is refused at once, like a suspended one, but
-- for the few RPCs whose access rule says while_deleting (cancel, and
-- taking an export); after a grace period a job purges every row of the
-- tenant, from every table the catalog lists with a tenant_id column, in
-- one transaction (app.tenant_purge), and leaves a deletion certificate
-- that belongs to no tenant, so it outlives the tenant.

-- The pending deletion. purge_time is when the purge job is due; it and
-- delete_request_time are set together, and cleared together by a
-- cancellation. delete_requested_by is who asked ("owner:<user id>",
-- "platform"); purge_job_id the River job that purges, which a
-- cancellation deletes. The operator's suspension (status) is separate:
-- cancelling a deletion gives the tenant back the status it had.
ALTER TABLE tenants
ADD COLUMN delete_request_time timestamptz,
ADD COLUMN purge_time timestamptz,
ADD COLUMN delete_requested_by text,
ADD COLUMN purge_job_id bigint,
ADD CONSTRAINT tenants_deletion_together CHECK (
  (purge_time IS NULL) = (delete_request_time IS NULL)
  AND (purge_time IS NULL) = (delete_requested_by IS NULL)
);
GRANT UPDATE (delete_request_time, purge_time, delete_requested_by, purge_job_id) ON tenants TO quarters_app;

-- tenant_deletion_certificates is the platform's record of each purge: the
-- rows each table held for the tenant before and after, when it was asked
-- for and by whom, when it ran, and the SHA-256 of the tenant's last
-- export, if it took one. It belongs to no tenant: the column is
-- deleted_tenant_id, not tenant_id, so no purge (and no export) ever
-- includes it, and it has no foreign key to the tenant it outlives. The
-- app role has no privilege on it; app.tenant_purge writes it and
-- app.tenant_deletion_certificate reads it, for the operator only.
CREATE TABLE tenant_deletion_certificates (
  deleted_tenant_id uuid PRIMARY KEY,
  -- slug is kept so the operator can tell which tenant it was; it is free
  -- for a new sign-up from the purge on.
  slug text NOT NULL,
  requested_by text NOT NULL,
  request_time timestamptz NOT NULL,
  -- scheduled_time is when the purge was due; purge_time when it ran.
  scheduled_time timestamptz NOT NULL,
  purge_time timestamptz NOT NULL DEFAULT now(),
  -- export_sha256 is the SHA-256 of the tenant's last finished export;
  -- NULL if it never took one.
  export_sha256 bytea,
  -- tables maps each table (schema-qualified; plus river_job, the
  -- tenant's jobs, and users, members left in no tenant) to
  -- {"before": n, "after": 0}.
  tables jsonb NOT NULL CHECK (jsonb_typeof(tables) = 'object')
);
ALTER TABLE tenant_deletion_certificates ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_deletion_certificates FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_all ON tenant_deletion_certificates TO CURRENT_USER USING (true) WITH CHECK (true);

-- The purge deletes the users that belonged to the tenant alone (their
-- email and password hash came with the tenant): the owner needs a
-- DELETE policy on users, which only app.tenant_purge uses.
CREATE POLICY owner_purge ON users FOR DELETE TO CURRENT_USER USING (true);

-- tenant_purge deletes every row of tenant p_tenant_id, if its deletion
-- is pending and due, and writes its certificate, in the caller's
-- transaction: an error anywhere (a failed statement, a row left behind)
-- raises, and the whole purge rolls back. It returns 'purged', or what
-- stopped it: 'gone' (no such tenant: purged already), 'not_pending'
-- (cancelled) or 'not_due' (purge_time is later).
--
-- The tables are every table in every schema with a tenant_id column,
-- read from the catalog when it runs, so a table added later cannot be
-- forgotten. It acts as the tenant (app.tenant_id set, transaction-local)
-- so the tables' own tenant_isolation policies admit exactly the
-- tenant's rows even for the owner; each table's rows are counted before,
-- deleted children first (by the foreign keys among them), and counted
-- again, and the tenants row goes last. Then the River jobs whose
-- arguments name the tenant (but p_keep_job, the purge job itself, which
-- River completes), and the users left in no tenant.
--
-- Like usage_flush it refuses to run acting for a tenant, so tenant code
-- cannot reach it by mistake; the app role calls it from one place,
-- db/lookup.go, for the purge job only.
CREATE FUNCTION app.tenant_purge(p_tenant_id uuid, p_keep_job bigint) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_tenant record;
  v_all oid[];
  v_left oid[];
  v_ready oid[];
  v_rel oid;
  v_n bigint;
  v_tables jsonb := '{}';
  v_users uuid[];
  v_sha bytea;
BEGIN
  IF app.current_tenant_id() IS NOT NULL THEN
    RAISE EXCEPTION 'app.tenant_purge must not run acting for a tenant';
  END IF;
  PERFORM set_config('app.tenant_id', p_tenant_id::text, true);

  SELECT * INTO v_tenant FROM public.tenants t WHERE t.id = p_tenant_id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM set_config('app.tenant_id', '', true);
    RETURN 'gone';
  END IF;
  IF v_tenant.purge_time IS NULL THEN
    PERFORM set_config('app.tenant_id', '', true);
    RETURN 'not_pending';
  END IF;
  IF v_tenant.purge_time > now() THEN
    PERFORM set_config('app.tenant_id', '', true);
    RETURN 'not_due';
  END IF;

  SELECT coalesce(array_agg(c.oid ORDER BY n.nspname, c.relname), '{}') INTO v_all
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
    AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
    AND EXISTS (
      SELECT 1 FROM pg_attribute a
      WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
    );

  FOREACH v_rel IN ARRAY v_all LOOP
    EXECUTE format('SELECT count(*) FROM %s WHERE tenant_id = $1', v_rel::regclass) INTO v_n USING p_tenant_id;
    v_tables := v_tables || jsonb_build_object(v_rel::regclass::text, jsonb_build_object('before', v_n));
  END LOOP;
  v_tables := v_tables || jsonb_build_object('public.tenants', jsonb_build_object('before', 1));
  SELECT count(*) INTO v_n FROM public.river_job j
  WHERE j.args ->> 'tenant_id' = p_tenant_id::text AND j.id IS DISTINCT FROM p_keep_job;
  v_tables := v_tables || jsonb_build_object('river_job', jsonb_build_object('before', v_n));
  -- Members who belong to no other tenant.
  SELECT coalesce(array_agg(m.user_id), '{}') INTO v_users
  FROM public.memberships m
  WHERE m.tenant_id = p_tenant_id
    AND NOT EXISTS (SELECT 1 FROM public.memberships o WHERE o.user_id = m.user_id AND o.tenant_id <> p_tenant_id);
  v_tables := v_tables || jsonb_build_object('public.users', jsonb_build_object('before', cardinality(v_users)));
  SELECT e.sha256 INTO v_sha FROM public.tenant_exports e
  WHERE e.tenant_id = p_tenant_id AND e.state = 'done'
  ORDER BY e.finish_time DESC LIMIT 1;

  -- Children first: a table is deleted from once no table still to do
  -- has a foreign key to it.
  v_left := v_all;
  WHILE cardinality(v_left) > 0 LOOP
    SELECT coalesce(array_agg(r ORDER BY r::regclass::text), '{}') INTO v_ready
    FROM unnest(v_left) AS r
    WHERE NOT EXISTS (
      SELECT 1 FROM pg_constraint k
      WHERE k.contype = 'f' AND k.confrelid = r AND k.conrelid <> r AND k.conrelid = ANY (v_left)
    );
    IF cardinality(v_ready) = 0 THEN
      RAISE EXCEPTION 'tenant_purge: the foreign keys among tenant tables form a cycle';
    END IF;
    FOREACH v_rel IN ARRAY v_ready LOOP
      EXECUTE format('DELETE FROM %s WHERE tenant_id = $1', v_rel::regclass) USING p_tenant_id;
    END LOOP;
    v_left := ARRAY(SELECT unnest(v_left) EXCEPT SELECT unnest(v_ready));
  END LOOP;
  DELETE FROM public.tenants t WHERE t.id = p_tenant_id;
  DELETE FROM public.river_job j
  WHERE j.args ->> 'tenant_id' = p_tenant_id::text AND j.id IS DISTINCT FROM p_keep_job;
  DELETE FROM public.users u
  WHERE u.id = ANY (v_users)
    AND NOT EXISTS (SELECT 1 FROM public.memberships m WHERE m.user_id = u.id);

  -- Counted again; anything left is an error, and rolls everything back.
  FOREACH v_rel IN ARRAY v_all LOOP
    EXECUTE format('SELECT count(*) FROM %s WHERE tenant_id = $1', v_rel::regclass) INTO v_n USING p_tenant_id;
    IF v_n <> 0 THEN
      RAISE EXCEPTION 'tenant_purge: % rows of tenant % left in %', v_n, p_tenant_id, v_rel::regclass;
    END IF;
    v_tables := jsonb_set(v_tables, ARRAY[v_rel::regclass::text, 'after'], to_jsonb(v_n));
  END LOOP;
  SELECT count(*) INTO v_n FROM public.tenants t WHERE t.id = p_tenant_id;
  IF v_n <> 0 THEN
    RAISE EXCEPTION 'tenant_purge: the tenants row of % is left', p_tenant_id;
  END IF;
  v_tables := jsonb_set(v_tables, '{public.tenants,after}', to_jsonb(v_n));
  SELECT count(*) INTO v_n FROM public.river_job j
  WHERE j.args ->> 'tenant_id' = p_tenant_id::text AND j.id IS DISTINCT FROM p_keep_job;
  v_tables := jsonb_set(v_tables, '{river_job,after}', to_jsonb(v_n));
  SELECT count(*) INTO v_n FROM public.users u WHERE u.id = ANY (v_users);
  v_tables := jsonb_set(v_tables, '{public.users,after}', to_jsonb(v_n));

  PERFORM set_config('app.tenant_id', '', true);
  INSERT INTO public.tenant_deletion_certificates (
    deleted_tenant_id, slug, requested_by, request_time, scheduled_time, export_sha256, tables
  ) VALUES (
    p_tenant_id, v_tenant.slug, v_tenant.delete_requested_by, v_tenant.delete_request_time,
    v_tenant.purge_time, v_sha, v_tables
  );
  RETURN 'purged';
END
$$;
REVOKE ALL ON FUNCTION app.tenant_purge(uuid, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.tenant_purge(uuid, bigint) TO quarters_app;

-- tenant_deletion_certificate returns the certificate of a purged
-- tenant, for the operator (PlatformService.GetDeletionCertificate); like
-- the platform lookups of 003 it returns nothing acting for a tenant.
CREATE FUNCTION app.tenant_deletion_certificate(p_tenant_id uuid)
RETURNS TABLE (
  deleted_tenant_id uuid,
  slug text,
  requested_by text,
  request_time timestamptz,
  scheduled_time timestamptz,
  purge_time timestamptz,
  export_sha256 bytea,
  tables jsonb
)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT c.deleted_tenant_id, c.slug, c.requested_by, c.request_time, c.scheduled_time,
    c.purge_time, c.export_sha256, c.tables
  FROM public.tenant_deletion_certificates c
  WHERE (SELECT app.current_tenant_id()) IS NULL AND c.deleted_tenant_id = p_tenant_id
$$;
REVOKE ALL ON FUNCTION app.tenant_deletion_certificate(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.tenant_deletion_certificate(uuid) TO quarters_app;
