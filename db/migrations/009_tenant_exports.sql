-- Tenant exports (issue 12): ExportTenant enqueues a job that writes every
-- row of the tenant, from every table the catalog says holds tenant rows,
-- into one tar.gz archive kept here until it is downloaded or expires.
-- The row is the tenant's own (row-level security as everywhere), and it
-- is itself left out of exports: an archive of archives would only grow.
CREATE TABLE tenant_exports (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  -- state: 'pending' until the job has written the archive, then 'done'.
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
  -- archive is the tar.gz; sha256 its digest; manifest the row count and
  -- SHA-256 of each table's NDJSON file (also inside the archive).
  archive bytea,
  sha256 bytea,
  manifest jsonb,
  create_time timestamptz NOT NULL DEFAULT now(),
  finish_time timestamptz,
  -- The SHA-256 of the download link's token (GetTenantExport mints a
  -- fresh one each call), and when the link stops working.
  download_token_hash bytea,
  download_expire_time timestamptz,
  PRIMARY KEY (tenant_id, id),
  CHECK ((state = 'done') = (archive IS NOT NULL AND sha256 IS NOT NULL AND manifest IS NOT NULL AND finish_time IS NOT NULL))
);
ALTER TABLE tenant_exports ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_exports FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_exports
USING (tenant_id = (SELECT app.current_tenant_id()))
WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));
GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_exports TO quarters_app;
