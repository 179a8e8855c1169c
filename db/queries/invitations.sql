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

-- InvitationGetLive reads a live invitation without using it: the
-- password work of AcceptInvitation happens before its transaction.
-- name: InvitationGetLive :one
SELECT * FROM invitations
WHERE tenant_id = @tenant_id AND token_hash = @token_hash
  AND accept_time IS NULL AND expire_time > now();

-- InvitationCloseForMember closes the pending invitations of a member's
-- email, before the member is removed: an invitation issued before they
-- joined must not let them back in. Closing sets accept_time (the one
-- column the server may change), so a closed invitation fails exactly as
-- a used one. Run it while the membership exists: the user row is visible
-- only through it.
-- name: InvitationCloseForMember :execrows
UPDATE invitations i SET accept_time = now()
FROM users u
WHERE u.id = @user_id AND i.tenant_id = @tenant_id
  AND lower(i.email) = lower(u.email) AND i.accept_time IS NULL;
