-- name: InvitationInsert :one
INSERT INTO invitations (tenant_id, email, role, token_hash, invited_by, expire_time)
VALUES (@tenant_id, @email, @role, @token_hash, sqlc.narg(invited_by), @expire_time)
RETURNING *;

-- InvitationAccept marks a live invitation accepted, once: a second
-- attempt, a revoked or expired invitation or an unknown token updates
-- nothing.
-- name: InvitationAccept :one
UPDATE invitations SET accept_time = now()
WHERE tenant_id = @tenant_id AND token_hash = @token_hash
  AND accept_time IS NULL AND revoke_time IS NULL AND expire_time > now()
RETURNING *;

-- InvitationGetLive reads a live invitation without using it: the
-- password work of AcceptInvitation happens before its transaction.
-- name: InvitationGetLive :one
SELECT * FROM invitations
WHERE tenant_id = @tenant_id AND token_hash = @token_hash
  AND accept_time IS NULL AND revoke_time IS NULL AND expire_time > now();

-- InvitationList pages the pending invitations (neither accepted, revoked
-- nor expired) newest first; see ProjectList for the cursor.
-- name: InvitationList :many
SELECT * FROM invitations
WHERE tenant_id = @tenant_id
  AND accept_time IS NULL AND revoke_time IS NULL AND expire_time > now()
  AND (create_time, id) < (@before_time::timestamptz, @before_id::uuid)
ORDER BY create_time DESC, id DESC
LIMIT @page_limit;

-- InvitationGetForUpdate locks an invitation, pending or not, until the
-- transaction ends, so a revocation and an acceptance apply one after the
-- other.
-- name: InvitationGetForUpdate :one
SELECT * FROM invitations
WHERE tenant_id = @tenant_id AND id = @id
FOR UPDATE;

-- InvitationRevoke revokes a pending invitation; one already accepted or
-- revoked updates nothing.
-- name: InvitationRevoke :one
UPDATE invitations SET revoke_time = now()
WHERE tenant_id = @tenant_id AND id = @id
  AND accept_time IS NULL AND revoke_time IS NULL
RETURNING *;

-- InvitationCloseForMember revokes the pending invitations of a member's
-- email, before the member is removed: an invitation issued before they
-- joined must not let them back in, and a revoked invitation fails exactly
-- as a used one. Run it while the membership exists: the user row is
-- visible only through it.
-- name: InvitationCloseForMember :many
UPDATE invitations i SET revoke_time = now()
FROM users u
WHERE u.id = @user_id AND i.tenant_id = @tenant_id
  AND lower(i.email) = lower(u.email)
  AND i.accept_time IS NULL AND i.revoke_time IS NULL
RETURNING i.*;

-- InvitationArm gives a pending invitation the hash of the token its mail
-- is about to carry (the mail worker, just before sending): the token
-- exists only in the mail, and a retried delivery's new token replaces
-- the previous attempt's. An invitation accepted, revoked or expired
-- meanwhile updates nothing, and no mail goes.
-- name: InvitationArm :one
UPDATE invitations SET token_hash = @token_hash
WHERE tenant_id = @tenant_id AND id = @id
  AND accept_time IS NULL AND revoke_time IS NULL AND expire_time > now()
RETURNING *;
