-- name: UserGet :one
SELECT * FROM users
WHERE id = @id;

-- UserSetInitialPassword sets the password of a user who has none yet (an
-- invited user accepting, a new owner at sign-up). A tenant can never
-- change a password that is already set: people share users across tenants.
-- name: UserSetInitialPassword :execrows
UPDATE users SET password_hash = @password_hash, update_time = now()
WHERE id = @id AND password_hash IS NULL;

-- UserEnsure calls the privileged app.user_ensure (006_identity.sql): the
-- user with this email, created without a password if new. It is the one
-- privileged call made inside a tenant's transaction (the rest are in
-- db/lookup.go), so a failed invitation or sign-up leaves at most a user
-- row that nothing refers to.
-- name: UserEnsure :one
SELECT app.user_ensure(@email::text)::uuid AS id;
