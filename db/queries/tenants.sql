-- name: TenantInsert :one
INSERT INTO tenants (id, slug, name, owner_email)
VALUES (@id, @slug, @name, @owner_email)
RETURNING *;

-- name: TenantGet :one
SELECT * FROM tenants
WHERE id = @id;
