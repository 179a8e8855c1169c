-- Plans: what each tenant may do. The catalog is global (not tenant data):
-- the app role reads it; the operator edits it. Per-tenant overrides of any
-- limit or feature are tenant rows under row-level security.

CREATE TABLE plans (
  name text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]*$'),
  requests_per_minute integer NOT NULL CHECK (requests_per_minute > 0),
  burst integer NOT NULL CHECK (burst > 0),
  max_projects integer NOT NULL CHECK (max_projects >= 0),
  max_members integer NOT NULL CHECK (max_members >= 1),
  max_api_calls_per_month bigint NOT NULL CHECK (max_api_calls_per_month >= 0),
  features text [] NOT NULL DEFAULT '{}',
  -- statement_timeout_ms is set transaction-locally for every request.
  statement_timeout_ms integer NOT NULL CHECK (statement_timeout_ms > 0),
  update_time timestamptz NOT NULL DEFAULT now()
);

INSERT INTO plans (
  name, requests_per_minute, burst, max_projects, max_members,
  max_api_calls_per_month, features, statement_timeout_ms
) VALUES
('free', 100, 20, 5, 3, 10000, '{}', 2000),
('pro', 1000, 200, 100, 50, 1000000, '{analytics}', 5000),
('enterprise', 10000, 2000, 10000, 1000, 100000000, '{analytics,custom_webhooks}', 15000);

GRANT SELECT ON plans TO quarters_app;

ALTER TABLE tenants ADD CONSTRAINT fk_plan FOREIGN KEY (plan) REFERENCES plans (name);

-- NULL limit columns mean "the plan's value". features maps a feature name
-- to true (granted) or false (withdrawn), over the plan's list.
CREATE TABLE tenant_overrides (
  tenant_id uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
  requests_per_minute integer CHECK (requests_per_minute > 0),
  burst integer CHECK (burst > 0),
  max_projects integer CHECK (max_projects >= 0),
  max_members integer CHECK (max_members >= 1),
  max_api_calls_per_month bigint CHECK (max_api_calls_per_month >= 0),
  statement_timeout_ms integer CHECK (statement_timeout_ms > 0),
  features jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(features) = 'object'),
  update_time timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE tenant_overrides ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_overrides FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_overrides
USING (tenant_id = (SELECT app.current_tenant_id()))
WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_overrides TO quarters_app;
