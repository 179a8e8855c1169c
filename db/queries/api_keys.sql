-- ApiKeyInsert records the key's creator: created_by when a signed-in
-- user creates it, else the creator of creator_key_id (the API key that
-- creates it), else NULL (the sign-up key).
-- name: ApiKeyInsert :one
-- (INSERT ... SELECT, not VALUES with a subquery, which Citus refuses.)
INSERT INTO api_keys (tenant_id, name, role, secret_hash, prefix, expire_time, created_by)
SELECT @tenant_id::uuid, @name::text, @role::text, @secret_hash::bytea, @prefix::text, sqlc.narg(expire_time)::timestamptz,
  coalesce(sqlc.narg(created_by)::uuid, (
    SELECT k.created_by FROM api_keys k
    WHERE k.tenant_id = @tenant_id::uuid AND k.id = sqlc.narg(creator_key_id)::uuid))
RETURNING *;

-- ApiKeyRevokeByCreator revokes the live keys a member created, when the
-- member is removed.
-- name: ApiKeyRevokeByCreator :many
UPDATE api_keys SET revoke_time = now()
WHERE tenant_id = @tenant_id AND created_by = @created_by AND revoke_time IS NULL
RETURNING *;

-- ApiKeyList pages newest first; see ProjectList for the cursor.
-- name: ApiKeyList :many
SELECT * FROM api_keys
WHERE tenant_id = @tenant_id
  AND (create_time, id) < (@before_time::timestamptz, @before_id::uuid)
ORDER BY create_time DESC, id DESC
LIMIT @page_limit;

-- ApiKeyRevokeLive revokes a live key; no row for one already revoked
-- (or unknown), which ApiKeyRevoke then answers for: only a key revoked
-- now makes an api_key.revoked event.
-- name: ApiKeyRevokeLive :one
UPDATE api_keys SET revoke_time = @revoke_time::timestamptz
WHERE tenant_id = @tenant_id AND id = @id AND revoke_time IS NULL
RETURNING *;

-- ApiKeyRevoke keeps the first revocation time when revoked again. The
-- time comes from the caller: Citus refuses now() inside COALESCE in a
-- write.
-- name: ApiKeyRevoke :one
UPDATE api_keys SET revoke_time = coalesce(revoke_time, @revoke_time::timestamptz)
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;

-- ApiKeyTouch records a use; an older report never moves the time back.
-- name: ApiKeyTouch :exec
UPDATE api_keys SET last_used_time = @used_time::timestamptz
WHERE tenant_id = @tenant_id AND id = @id
  AND (last_used_time IS NULL OR last_used_time < @used_time::timestamptz);
