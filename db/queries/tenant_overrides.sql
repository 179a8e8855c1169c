-- TenantOverrideGet is the tenant's overrides; no rows means none.
-- name: TenantOverrideGet :one
SELECT * FROM tenant_overrides
WHERE tenant_id = @tenant_id;

-- TenantOverrideUpsert replaces every override of the tenant: a NULL
-- limit means the plan's value, an empty features object none.
-- name: TenantOverrideUpsert :one
INSERT INTO tenant_overrides (
  tenant_id, requests_per_minute, burst, max_projects, max_members,
  max_api_calls_per_month, statement_timeout_ms, features
) VALUES (
  @tenant_id, sqlc.narg(requests_per_minute)::int, sqlc.narg(burst)::int,
  sqlc.narg(max_projects)::int, sqlc.narg(max_members)::int,
  sqlc.narg(max_api_calls_per_month)::bigint, sqlc.narg(statement_timeout_ms)::int,
  @features::jsonb
)
ON CONFLICT (tenant_id) DO UPDATE SET
  requests_per_minute = excluded.requests_per_minute,
  burst = excluded.burst,
  max_projects = excluded.max_projects,
  max_members = excluded.max_members,
  max_api_calls_per_month = excluded.max_api_calls_per_month,
  statement_timeout_ms = excluded.statement_timeout_ms,
  features = excluded.features,
  update_time = now()
RETURNING *;
