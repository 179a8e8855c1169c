-- Quarters schema, version 1.
--
-- Two roles touch this database: the owner, which runs these migrations and
-- owns every object, and quarters_app, the role the server connects as. The
-- app role is NOSUPERUSER and NOBYPASSRLS and owns nothing, so row-level
-- security decides what it sees; the server refuses to start otherwise.
-- Roles are cluster-wide, so the app role may already exist (another
-- database in the cluster, or a concurrent migration racing this one).
DO $$
BEGIN
  CREATE ROLE quarters_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;
END
$$;

CREATE SCHEMA app;
REVOKE ALL ON SCHEMA app FROM PUBLIC;
GRANT USAGE ON SCHEMA app TO quarters_app;

-- current_tenant_id is the tenant of the running transaction, set by the
-- server with set_config('app.tenant_id', $1, true). A pooled connection
-- that has had the setting once reads '' (not NULL) afterwards, hence nullif:
-- an unset tenant matches no row instead of raising an error.
CREATE FUNCTION app.current_tenant_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT nullif(current_setting('app.tenant_id', true), '')::uuid $$;
REVOKE ALL ON FUNCTION app.current_tenant_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.current_tenant_id() TO quarters_app;

CREATE TABLE tenants (
  id uuid PRIMARY KEY,
  slug text NOT NULL CONSTRAINT tenants_slug_key UNIQUE,
  name text NOT NULL,
  plan text NOT NULL DEFAULT 'free',
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
  owner_email text NOT NULL,
  create_time timestamptz NOT NULL DEFAULT now(),
  update_time timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  name text NOT NULL,
  role text NOT NULL CHECK (role IN ('member', 'admin', 'owner')),
  -- secret_hash is SHA-256 of the whole key. The key carries 160 random
  -- bits, so a fast hash is enough; the secret itself is never stored.
  secret_hash bytea NOT NULL CONSTRAINT api_keys_secret_hash_key UNIQUE,
  prefix text NOT NULL,
  create_time timestamptz NOT NULL DEFAULT now(),
  expire_time timestamptz,
  revoke_time timestamptz,
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE projects (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  name text NOT NULL,
  description text NOT NULL DEFAULT '',
  create_time timestamptz NOT NULL DEFAULT now(),
  update_time timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX projects_list_idx ON projects (tenant_id, create_time DESC, id DESC);

CREATE TABLE documents (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL,
  title text NOT NULL,
  content text NOT NULL DEFAULT '',
  create_time timestamptz NOT NULL DEFAULT now(),
  update_time timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  -- The foreign key includes tenant_id, so a document cannot point at
  -- another tenant's project. fk_project names the resource for errors.
  CONSTRAINT fk_project FOREIGN KEY (tenant_id, project_id)
  REFERENCES projects (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX documents_list_idx ON documents (tenant_id, create_time DESC, id DESC);
CREATE INDEX documents_project_list_idx ON documents (tenant_id, project_id, create_time DESC, id DESC);

-- Row-level security: every tenant table is enabled and forced (so even
-- the owner is subject to it outside the lookups below), with one policy
-- for reads and writes. `(SELECT app.current_tenant_id())` is evaluated
-- once per statement, not once per row.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
USING (id = (SELECT app.current_tenant_id()))
WITH CHECK (id = (SELECT app.current_tenant_id()));

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
USING (tenant_id = (SELECT app.current_tenant_id()))
WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE projects FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON projects
USING (tenant_id = (SELECT app.current_tenant_id()))
WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE documents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON documents
USING (tenant_id = (SELECT app.current_tenant_id()))
WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

GRANT SELECT, INSERT ON tenants TO quarters_app;
GRANT SELECT, INSERT ON api_keys TO quarters_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON projects, documents TO quarters_app;

-- Pre-tenant lookups. Before a request's tenant is known, exactly these
-- functions may read across tenants; they run as the owner (SECURITY
-- DEFINER) and return only what the caller proves it may see. The owner is
-- subject to FORCE ROW LEVEL SECURITY, so each table they read has a
-- read-only policy for the owner role alone (CURRENT_USER at migration
-- time); quarters_app never matches it. The Go side calls them from one
-- file, db/lookup.go.

CREATE POLICY owner_lookup ON tenants FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY owner_lookup ON api_keys FOR SELECT TO CURRENT_USER USING (true);

-- api_key_authenticate returns the live (not revoked, not expired) key
-- whose secret hashes to p_secret_hash, with its tenant's slug and status.
-- Knowing the hash means holding the secret, so it reveals nothing the
-- caller does not already own.
CREATE FUNCTION app.api_key_authenticate(p_secret_hash bytea)
RETURNS TABLE (
  key_id uuid,
  tenant_id uuid,
  role text,
  secret_hash bytea,
  tenant_slug text,
  tenant_status text
)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT k.id, k.tenant_id, k.role, k.secret_hash, t.slug, t.status
  FROM public.api_keys k
  JOIN public.tenants t ON t.id = k.tenant_id
  WHERE k.secret_hash = p_secret_hash
    AND k.revoke_time IS NULL
    AND (k.expire_time IS NULL OR k.expire_time > now())
$$;
REVOKE ALL ON FUNCTION app.api_key_authenticate(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.api_key_authenticate(bytea) TO quarters_app;
