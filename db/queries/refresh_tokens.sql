-- name: RefreshTokenInsert :one
INSERT INTO refresh_tokens (tenant_id, user_id, family_id, token_hash, expire_time)
VALUES (@tenant_id, @user_id, @family_id, @token_hash, @expire_time)
RETURNING *;

-- RefreshTokenUse marks a live token used, once. Two concurrent uses of
-- one token cannot both succeed: the second finds used_time set.
-- name: RefreshTokenUse :one
UPDATE refresh_tokens SET used_time = now()
WHERE tenant_id = @tenant_id AND token_hash = @token_hash
  AND used_time IS NULL AND revoke_time IS NULL AND expire_time > now()
RETURNING *;

-- name: RefreshTokenGet :one
SELECT * FROM refresh_tokens
WHERE tenant_id = @tenant_id AND token_hash = @token_hash;

-- RefreshTokenRevokeFamily ends a session: every token of the family.
-- name: RefreshTokenRevokeFamily :execrows
UPDATE refresh_tokens SET revoke_time = now()
WHERE tenant_id = @tenant_id AND family_id = @family_id AND revoke_time IS NULL;
