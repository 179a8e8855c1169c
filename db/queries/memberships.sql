-- name: MembershipInsert :one
INSERT INTO memberships (tenant_id, user_id, role)
VALUES (@tenant_id, @user_id, @role)
RETURNING *;

-- name: MembershipGet :one
SELECT * FROM memberships
WHERE tenant_id = @tenant_id AND user_id = @user_id;

-- MembershipGetForUpdate locks the membership until the transaction ends,
-- so concurrent role changes and removals apply one after the other.
-- name: MembershipGetForUpdate :one
SELECT * FROM memberships
WHERE tenant_id = @tenant_id AND user_id = @user_id
FOR UPDATE;

-- MemberList pages newest first; see ProjectList for the cursor. It
-- carries what a tenant sees of each member's account: the email (what
-- else belongs to the account is for the user themself).
-- name: MemberList :many
SELECT m.*, u.email
FROM memberships m JOIN users u ON u.id = m.user_id
WHERE m.tenant_id = @tenant_id
  AND (m.create_time, m.user_id) < (@before_time::timestamptz, @before_id::uuid)
ORDER BY m.create_time DESC, m.user_id DESC
LIMIT @page_limit;

-- MembershipVersions is every member's role, token version and email: the
-- part of the tenant's cached record that access tokens are checked
-- against (ours by user id and version, an identity provider's by email).
-- name: MembershipVersions :many
SELECT m.user_id, m.role, m.version, u.email
FROM memberships m JOIN users u ON u.id = m.user_id
WHERE m.tenant_id = @tenant_id;

-- MembershipSetRole changes the role and moves the version on, so access
-- tokens carrying the old role stop working.
-- name: MembershipSetRole :one
UPDATE memberships SET role = @role, version = version + 1, update_time = now()
WHERE tenant_id = @tenant_id AND user_id = @user_id
RETURNING *;

-- name: MembershipDelete :execrows
DELETE FROM memberships
WHERE tenant_id = @tenant_id AND user_id = @user_id;

-- MembershipLock serialises changes that could leave a tenant
-- without an owner, or over its member quota: demoting or removing an
-- owner, and adding members. The lock ends with the transaction.
-- name: MembershipLock :exec
SELECT pg_advisory_xact_lock(hashtextextended('quarters.memberships:' || @tenant_key::text, 0));

-- name: MembershipCountOwners :one
SELECT count(*) FROM memberships
WHERE tenant_id = @tenant_id AND role = 'owner';

-- MembershipCountSeats counts the seats max_members limits: members, plus
-- pending (unaccepted, unrevoked, unexpired) invitations for people not
-- yet members.
-- name: MembershipCountSeats :one
SELECT
  (SELECT count(*) FROM memberships m WHERE m.tenant_id = @tenant_id)
  + (SELECT count(DISTINCT lower(i.email)) FROM invitations i
     WHERE i.tenant_id = @tenant_id AND i.accept_time IS NULL AND i.revoke_time IS NULL
       AND i.expire_time > now()
       AND NOT EXISTS (
         SELECT 1 FROM memberships m2 JOIN users u ON u.id = m2.user_id
         WHERE m2.tenant_id = @tenant_id AND lower(u.email) = lower(i.email)))
  AS seats;

-- MembershipCount counts members only: the seat check when an invitation
-- is accepted, whose own pending seat is becoming this membership.
-- name: MembershipCount :one
SELECT count(*) FROM memberships
WHERE tenant_id = @tenant_id;

-- MembershipEmailState says what inviting email would change: nothing if
-- it is a member's already, no new seat if an invitation is pending for it.
-- name: MembershipEmailState :one
SELECT
  EXISTS (
    SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id
    WHERE m.tenant_id = @tenant_id AND lower(u.email) = lower(@email::text)
  ) AS is_member,
  EXISTS (
    SELECT 1 FROM invitations i
    WHERE i.tenant_id = @tenant_id AND lower(i.email) = lower(@email::text)
      AND i.accept_time IS NULL AND i.revoke_time IS NULL AND i.expire_time > now()
  ) AS is_pending;

-- MembershipBumpVersion moves the version on without changing the role:
-- every access token issued for the membership fails on its next use (a
-- reused refresh token's session).
-- name: MembershipBumpVersion :exec
UPDATE memberships SET version = version + 1, update_time = now()
WHERE tenant_id = @tenant_id AND user_id = @user_id;

-- MembershipManagers lists the tenant's owners and admins (the roles that
-- manage webhooks), for notices such as a disabled webhook endpoint.
-- name: MembershipManagers :many
SELECT user_id FROM memberships
WHERE tenant_id = @tenant_id AND role IN ('owner', 'admin')
ORDER BY user_id
LIMIT 100;
