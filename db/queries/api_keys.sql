-- name: ApiKeyInsert :one
INSERT INTO api_keys (tenant_id, name, role, secret_hash, prefix, expire_time)
VALUES (@tenant_id, @name, @role, @secret_hash, @prefix, sqlc.narg(expire_time))
RETURNING *;

-- ApiKeyList pages newest first; see ProjectList for the cursor.
-- name: ApiKeyList :many
SELECT * FROM api_keys
WHERE tenant_id = @tenant_id
  AND (create_time, id) < (@before_time::timestamptz, @before_id::uuid)
ORDER BY create_time DESC, id DESC
LIMIT @page_limit;

-- ApiKeyRevoke keeps the first revocation time when revoked again.
-- name: ApiKeyRevoke :one
UPDATE api_keys SET revoke_time = coalesce(revoke_time, now())
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;

-- ApiKeyTouch records a use; an older report never moves the time back.
-- name: ApiKeyTouch :exec
UPDATE api_keys SET last_used_time = @used_time::timestamptz
WHERE tenant_id = @tenant_id AND id = @id
  AND (last_used_time IS NULL OR last_used_time < @used_time::timestamptz);
