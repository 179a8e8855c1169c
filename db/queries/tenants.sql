-- name: TenantInsert :one
INSERT INTO tenants (id, slug, name, owner_email)
VALUES (@id, @slug, @name, @owner_email)
RETURNING *;

-- name: TenantGet :one
SELECT * FROM tenants
WHERE id = @id;

-- TenantRecordGet is the tenant with its effective limits: each override,
-- else the plan's value. Features are merged in Go.
-- name: TenantRecordGet :one
SELECT
  t.id, t.slug, t.status, t.plan,
  coalesce(o.requests_per_minute, p.requests_per_minute)::int AS requests_per_minute,
  coalesce(o.burst, p.burst)::int AS burst,
  coalesce(o.max_projects, p.max_projects)::int AS max_projects,
  coalesce(o.max_members, p.max_members)::int AS max_members,
  coalesce(o.max_api_calls_per_month, p.max_api_calls_per_month)::bigint AS max_api_calls_per_month,
  coalesce(o.statement_timeout_ms, p.statement_timeout_ms)::int AS statement_timeout_ms,
  p.features AS plan_features,
  coalesce(o.features, '{}'::jsonb)::jsonb AS feature_overrides
FROM tenants t
JOIN plans p ON p.name = t.plan
LEFT JOIN tenant_overrides o ON o.tenant_id = t.id
WHERE t.id = @id;
