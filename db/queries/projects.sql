-- name: ProjectInsert :one
INSERT INTO projects (tenant_id, name, description)
VALUES (@tenant_id, @name, @description)
RETURNING *;

-- name: ProjectGet :one
SELECT * FROM projects
WHERE tenant_id = @tenant_id AND id = @id;

-- ProjectList pages newest first. The first page passes the largest cursor
-- (year 9999, the max uuid) so one statement, and one index range scan,
-- serves every page.
-- name: ProjectList :many
SELECT * FROM projects
WHERE tenant_id = @tenant_id
  AND (create_time, id) < (@before_time::timestamptz, @before_id::uuid)
ORDER BY create_time DESC, id DESC
LIMIT @page_limit;

-- name: ProjectUpdate :one
UPDATE projects SET
  name = CASE WHEN @set_name::bool THEN @name::text ELSE name END,
  description = CASE WHEN @set_description::bool THEN @description::text ELSE description END,
  update_time = now()
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;

-- name: ProjectDelete :execrows
DELETE FROM projects
WHERE tenant_id = @tenant_id AND id = @id;

-- ProjectLockQuota serialises project creation within one tenant, so a
-- count followed by an insert cannot be raced past max_projects. The lock
-- ends with the transaction.
-- name: ProjectLockQuota :exec
SELECT pg_advisory_xact_lock(hashtextextended('quarters.projects:' || @tenant_key::text, 0));

-- name: ProjectCount :one
SELECT count(*) FROM projects
WHERE tenant_id = @tenant_id;
