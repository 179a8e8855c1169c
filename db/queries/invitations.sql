-- name: InvitationInsert :one
INSERT INTO invitations (tenant_id, email, role, token_hash, invited_by, expire_time)
VALUES (@tenant_id, @email, @role, @token_hash, sqlc.narg(invited_by), @expire_time)
RETURNING *;

-- InvitationAccept marks a live invitation accepted, once: a second
-- attempt, an expired invitation or an unknown token updates nothing.
-- name: InvitationAccept :one
UPDATE invitations SET accept_time = now()
WHERE tenant_id = @tenant_id AND token_hash = @token_hash
  AND accept_time IS NULL AND expire_time > now()
RETURNING *;
