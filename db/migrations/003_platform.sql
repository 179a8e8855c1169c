-- Platform administration: the operator changes a tenant's plan, overrides
-- and status (PlatformService), acting as that tenant (db.ActAs), so every
-- write is still subject to row-level security. Each change leaves an
-- audit record in the tenant's own rows.

-- The operator's writes to tenants: only these columns. The app role
-- still cannot change a tenant's id, slug or owner, nor delete a tenant.
GRANT UPDATE (plan, status, update_time) ON tenants TO quarters_app;

-- audit_events is append-only: the app role may insert and read, never
-- update or delete. before and after hold the changed fields as JSON
-- objects. A tenant's events go with the tenant (ON DELETE CASCADE).
CREATE TABLE audit_events (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  -- actor is who made the change ("platform" for the operator's key).
  actor text NOT NULL,
  -- action is the RPC that made it, e.g. "SetPlan".
  action text NOT NULL,
  before jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(before) = 'object'),
  after jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(after) = 'object'),
  create_time timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_events_list_idx ON audit_events (tenant_id, create_time DESC, id DESC);
-- The operator's unfiltered, newest-first view across tenants
-- (app.platform_audit_event_list) pages on this one.
CREATE INDEX audit_events_platform_list_idx ON audit_events (create_time DESC, id DESC);
-- And the operator's list of tenants (app.platform_tenant_list).
CREATE INDEX tenants_platform_list_idx ON tenants (create_time DESC, id DESC);

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_events
USING (tenant_id = (SELECT app.current_tenant_id()))
WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

GRANT SELECT, INSERT ON audit_events TO quarters_app;

-- Platform lookups: the operator's reads across tenants, the only ones
-- besides the pre-tenant lookups of 001. Like those, they run as the owner
-- (SECURITY DEFINER) through a read-only owner_lookup policy, and are
-- called from one file, db/lookup.go, only by PlatformService, whose RPCs
-- the access interceptor admits for the platform credential alone.
--
-- Defence in depth: inside a transaction acting for a tenant
-- (app.tenant_id set, as db.InTenant does) they return no rows, so tenant
-- code that called one by mistake would still see nothing of another
-- tenant's.
--
-- Both page newest first by keyset: rows strictly before
-- (p_before_time, p_before_id), at most p_limit of them (capped at 1001).

CREATE POLICY owner_lookup ON audit_events FOR SELECT TO CURRENT_USER USING (true);

-- platform_tenant_list lists tenants, optionally only those with status
-- p_status and plan p_plan (NULL: any).
CREATE FUNCTION app.platform_tenant_list(
  p_status text,
  p_plan text,
  p_before_time timestamptz,
  p_before_id uuid,
  p_limit integer
)
RETURNS TABLE (
  id uuid,
  slug text,
  name text,
  plan text,
  status text,
  owner_email text,
  create_time timestamptz,
  update_time timestamptz
)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT t.id, t.slug, t.name, t.plan, t.status, t.owner_email, t.create_time, t.update_time
  FROM public.tenants t
  WHERE (SELECT app.current_tenant_id()) IS NULL
    AND (p_status IS NULL OR t.status = p_status)
    AND (p_plan IS NULL OR t.plan = p_plan)
    AND (t.create_time, t.id) < (p_before_time, p_before_id)
  ORDER BY t.create_time DESC, t.id DESC
  LIMIT least(greatest(p_limit, 0), 1001)
$$;
REVOKE ALL ON FUNCTION app.platform_tenant_list(text, text, timestamptz, uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.platform_tenant_list(text, text, timestamptz, uuid, integer) TO quarters_app;

-- platform_audit_event_list lists every tenant's audit events. (One
-- tenant's are read as that tenant, under row-level security, without it.)
CREATE FUNCTION app.platform_audit_event_list(
  p_before_time timestamptz,
  p_before_id uuid,
  p_limit integer
)
RETURNS TABLE (
  tenant_id uuid,
  id uuid,
  actor text,
  action text,
  before jsonb,
  after jsonb,
  create_time timestamptz
)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT e.tenant_id, e.id, e.actor, e.action, e.before, e.after, e.create_time
  FROM public.audit_events e
  WHERE (SELECT app.current_tenant_id()) IS NULL
    AND (e.create_time, e.id) < (p_before_time, p_before_id)
  ORDER BY e.create_time DESC, e.id DESC
  LIMIT least(greatest(p_limit, 0), 1001)
$$;
REVOKE ALL ON FUNCTION app.platform_audit_event_list(timestamptz, uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.platform_audit_event_list(timestamptz, uuid, integer) TO quarters_app;
