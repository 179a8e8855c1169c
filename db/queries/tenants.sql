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
  t.id, t.slug, t.status, t.plan, t.purge_time,
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

-- TenantGetForUpdate reads the tenant and locks its row until the
-- transaction ends, so concurrent platform changes to one tenant apply one
-- after the other and each audit record's "before" is what it changed.
-- NO KEY UPDATE does not block the tenant's own inserts, whose foreign key
-- checks take KEY SHARE.
-- name: TenantGetForUpdate :one
SELECT * FROM tenants
WHERE id = @id
FOR NO KEY UPDATE;

-- TenantSetPlan moves the tenant to another plan; an unknown plan violates
-- fk_plan.
-- name: TenantSetPlan :one
UPDATE tenants SET plan = @plan, update_time = now()
WHERE id = @id
RETURNING *;

-- name: TenantSetStatus :one
UPDATE tenants SET status = @status, update_time = now()
WHERE id = @id
RETURNING *;

-- TenantDeletionRequest schedules the tenant's purge grace_seconds from now,
-- unless one is pending already (then no row: the caller reads the
-- pending one).
-- name: TenantDeletionRequest :one
UPDATE tenants SET delete_request_time = now(),
  purge_time = now() + make_interval(secs => sqlc.arg(grace_seconds)::float8),
  delete_requested_by = sqlc.arg(requested_by)::text, update_time = now()
WHERE id = sqlc.arg(id) AND purge_time IS NULL
RETURNING *;

-- name: TenantSetPurgeJob :exec
UPDATE tenants SET purge_job_id = @purge_job_id
WHERE id = @id;

-- TenantDeletionCancel clears a pending deletion; no row if none is
-- pending.
-- name: TenantDeletionCancel :one
UPDATE tenants SET delete_request_time = NULL, purge_time = NULL,
  delete_requested_by = NULL, purge_job_id = NULL, update_time = now()
WHERE id = @id AND purge_time IS NOT NULL
RETURNING *;
