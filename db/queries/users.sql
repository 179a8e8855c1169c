-- name: UserGet :one
SELECT * FROM users
WHERE id = @id;

-- UserEnsure calls the privileged app.user_ensure (007_email_proof.sql):
-- the user with this email, created (created) with password_hash (NULL
-- for none) if new; an existing user's password is never touched.
-- It and UserSignOutEverywhere are the privileged calls made inside a
-- tenant's transaction (the rest are in db/identity.go and db/lookup.go),
-- so a failed invitation or sign-up leaves at most a user row that nothing
-- refers to.
-- name: UserEnsure :one
SELECT e.user_id::uuid AS id, e.created::boolean AS created
FROM app.user_ensure(@email::text, sqlc.narg(password_hash)::text) AS e;

-- UserClaim gives an account nobody has proved to own (no password, or
-- an unverified email) to the person who just did: the invitee holding
-- the invitation token mailed to the address. It sets the password and
-- verifies the address; the caller then ends every earlier session
-- (UserSignOutEverywhere), so whoever made the account before is out.
-- Visible under RLS only once the user is a member of the acting tenant.
-- name: UserClaim :one
UPDATE users SET password_hash = @password_hash, email_verify_time = now(), update_time = now()
WHERE id = @id AND (password_hash IS NULL OR email_verify_time IS NULL)
RETURNING *;

-- UserSignOutEverywhere calls the privileged app.user_sign_out_everywhere
-- inside the caller's transaction: every session of the user ends, in
-- every tenant; it returns the tenants whose cached records to invalidate.
-- name: UserSignOutEverywhere :many
SELECT app.user_sign_out_everywhere(@user_id::uuid)::uuid AS tenant_id;
