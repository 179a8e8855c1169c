-- Webhooks (WebhookService, feature custom_webhooks): a tenant's
-- endpoints, the outbox of its events, and one delivery per event and
-- endpoint. Events and deliveries are written in the transaction of the
-- change that causes them; River jobs (internal/webhook) send them.

CREATE TABLE webhook_endpoints (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  url text NOT NULL CHECK (url ~ '^https?://'),
  event_types text [] NOT NULL CHECK (cardinality(event_types) > 0),
  enabled boolean NOT NULL DEFAULT true,
  -- disabled_reason says why Quarters disabled the endpoint (a delivery
  -- failed for a day); empty when enabled, or disabled by the tenant.
  disabled_reason text NOT NULL DEFAULT '',
  -- secret (whsec_…) is kept as is, not hashed: signing a delivery needs
  -- the key itself (HMAC), unlike an API key, which is only compared.
  secret text NOT NULL,
  -- previous_secret still signs deliveries until previous_secret_expire_time,
  -- so a receiver can switch secrets without missing one.
  previous_secret text,
  previous_secret_expire_time timestamptz,
  secret_rotate_time timestamptz NOT NULL DEFAULT now(),
  create_time timestamptz NOT NULL DEFAULT now(),
  update_time timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);

CREATE INDEX webhook_endpoints_list_idx ON webhook_endpoints (tenant_id, create_time DESC, id DESC);

CREATE TABLE webhook_events (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  type text NOT NULL CHECK (type ~ '^[a-z_]+\.[a-z_]+$'),
  -- payload is the delivered body: {"type", "timestamp", "data"}.
  payload jsonb NOT NULL,
  create_time timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE webhook_deliveries (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  endpoint_id uuid NOT NULL,
  event_id uuid NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  -- response_code is the receiver's last HTTP status; NULL when none
  -- answered.
  response_code integer,
  error text NOT NULL DEFAULT '',
  create_time timestamptz NOT NULL DEFAULT now(),
  last_attempt_time timestamptz,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, endpoint_id) REFERENCES webhook_endpoints (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, event_id) REFERENCES webhook_events (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX webhook_deliveries_list_idx ON webhook_deliveries (tenant_id, endpoint_id, create_time DESC, id DESC);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (tenant_id, event_id);

ALTER TABLE webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_endpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_endpoints
USING (tenant_id = (SELECT app.current_tenant_id()))
WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

ALTER TABLE webhook_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_events
USING (tenant_id = (SELECT app.current_tenant_id()))
WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_deliveries
USING (tenant_id = (SELECT app.current_tenant_id()))
WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_endpoints TO quarters_app;
-- Events are immutable once written; they go with their tenant.
GRANT SELECT, INSERT ON webhook_events TO quarters_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_deliveries TO quarters_app;
