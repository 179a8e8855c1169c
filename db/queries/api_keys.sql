-- name: ApiKeyInsert :one
INSERT INTO api_keys (tenant_id, name, role, secret_hash, prefix)
VALUES (@tenant_id, @name, @role, @secret_hash, @prefix)
RETURNING *;
