-- name: TokenKeysGet :one
SELECT * FROM token_keys
WHERE id = 1;

-- TokenKeysGetForUpdate locks the key set, so one replica at a time
-- creates or rotates it.
-- name: TokenKeysGetForUpdate :one
SELECT * FROM token_keys
WHERE id = 1
FOR UPDATE;

-- name: TokenKeysPut :exec
INSERT INTO token_keys (id, key_set, rotate_time)
VALUES (1, @key_set, @rotate_time)
ON CONFLICT (id) DO UPDATE SET key_set = excluded.key_set, rotate_time = excluded.rotate_time;
