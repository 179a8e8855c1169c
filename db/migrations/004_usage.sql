-- Usage: API calls per tenant, day and procedure. Each replica counts in
-- memory and adds its counts here every few seconds (an upsert that adds,
-- so replicas never overwrite each other). Monthly totals for the
-- max_api_calls_per_month quota and the analytics RPC read from here.

CREATE TABLE usage_daily (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  day date NOT NULL,
  procedure text NOT NULL,
  requests bigint NOT NULL DEFAULT 0 CHECK (requests >= 0),
  rate_limited bigint NOT NULL DEFAULT 0 CHECK (rate_limited >= 0),
  PRIMARY KEY (tenant_id, day, procedure)
);

ALTER TABLE usage_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_daily FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON usage_daily
USING (tenant_id = (SELECT app.current_tenant_id()))
WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

GRANT SELECT, INSERT, UPDATE ON usage_daily TO quarters_app;
