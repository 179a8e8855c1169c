-- Email proof (issue 9, V1 and V3): a credential is set on a user only by
-- someone who proved control of the email with a single-use token mailed
-- to it, or by the signed-in user themself. Mails leave through River's
-- job queue, enqueued in the transaction that causes them. API keys record
-- who created them, so removing that member revokes them.
--
-- River's own tables are created by db.Migrate (rivermigrate) before this
-- file runs; the grants at the end give the app role what River does at
-- run time, nothing more.

-- email_verify_time is when the user proved control of email (a
-- verification, reset or invitation token delivered there). NULL: not yet,
-- and such a user cannot sign in. Users who already had a password when
-- this migration ran were made by the flows that existed before email
-- proof and are taken as verified, so an upgrade locks nobody out; their
-- passwords are as trustworthy as those flows were (an operator who fears
-- V1 was used against them can ask the affected users to reset).
ALTER TABLE users ADD COLUMN email_verify_time timestamptz;
UPDATE users SET email_verify_time = update_time WHERE password_hash IS NOT NULL;
-- AcceptInvitation claims an unverified account for the invitee who holds
-- the mailed token (password and verification at once), under RLS: only
-- a user who is a member of the acting tenant.
GRANT UPDATE (email_verify_time) ON users TO quarters_app;

-- Invitation tokens were shown to the inviter until now, so holding one
-- proves nothing about the invitee's mailbox: every pending invitation is
-- revoked, and admins invite again (the new token goes only by mail).
UPDATE invitations SET revoke_time = now()
WHERE accept_time IS NULL AND revoke_time IS NULL;
-- The mail worker writes the token's hash just before it sends the mail,
-- so the token exists only in the mail (see server/notify).
GRANT UPDATE (token_hash) ON invitations TO quarters_app;

-- email_tokens are the single-use tokens mailed to a user: verify_email
-- marks the address verified; set_password sets a new password (reset, or
-- a first password after a sign-up without one) and verifies the address.
-- Like users they belong to no tenant. The app role has no privilege on
-- the table: the SECURITY DEFINER functions below are the only way in,
-- each taking the proof it needs (the token's hash, or the id of the
-- authenticated user).
CREATE TABLE email_tokens (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  purpose text NOT NULL CHECK (purpose IN ('verify_email', 'set_password')),
  -- token_hash is SHA-256 of the token (160 random bits); the token itself
  -- exists only in the mail.
  token_hash bytea NOT NULL CONSTRAINT email_tokens_token_hash_key UNIQUE,
  -- job_id is the River job that mailed it: a retried delivery replaces
  -- the hash of its earlier attempt's token instead of adding one.
  job_id bigint CONSTRAINT email_tokens_job_id_key UNIQUE,
  create_time timestamptz NOT NULL DEFAULT now(),
  expire_time timestamptz NOT NULL,
  used_time timestamptz
);
CREATE INDEX email_tokens_live_idx ON email_tokens (user_id, purpose) WHERE used_time IS NULL;
ALTER TABLE email_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE email_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_all ON email_tokens TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY owner_update ON users FOR UPDATE TO CURRENT_USER USING (true) WITH CHECK (true);

-- user_credentials now also says whether the email is verified: sign-in
-- refuses an unverified account (after the password matched).
DROP FUNCTION app.user_credentials(text);
CREATE FUNCTION app.user_credentials(p_email text)
RETURNS TABLE (user_id uuid, password_hash text, email_verified boolean)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT id, password_hash, email_verify_time IS NOT NULL
  FROM public.users WHERE lower(email) = lower(p_email)
$$;
REVOKE ALL ON FUNCTION app.user_credentials(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.user_credentials(text) TO quarters_app;

-- user_ensure now takes the password hash of a user it creates, and says
-- whether it created one: sign-up sets the password of a user it creates,
-- in the same statement either way (no timing tells the cases apart), and
-- never of one that exists.
DROP FUNCTION app.user_ensure(text);
CREATE FUNCTION app.user_ensure(p_email text, p_password_hash text)
RETURNS TABLE (user_id uuid, created boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id uuid;
BEGIN
  INSERT INTO public.users (email, password_hash) VALUES (p_email, p_password_hash)
  ON CONFLICT (lower(email)) DO NOTHING
  RETURNING id INTO v_id;
  IF v_id IS NOT NULL THEN
    RETURN QUERY SELECT v_id, true;
    RETURN;
  END IF;
  RETURN QUERY SELECT u.id, false FROM public.users u WHERE lower(u.email) = lower(p_email);
END
$$;
REVOKE ALL ON FUNCTION app.user_ensure(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.user_ensure(text, text) TO quarters_app;

-- email_token_issue stores the hash of a token the mail worker is about to
-- send to the user with this email, for purpose, valid for p_ttl; it
-- returns the user, the address to send to (as stored) and the expiry, or
-- nothing when there is nothing to send: no such user, a verify_email
-- token for an address already verified, a job whose token was used or
-- expired, or p_max_live tokens of that purpose already live (so nobody
-- can flood a mailbox through the public request RPCs). A retried job
-- (same p_job_id) replaces its earlier token's hash and keeps its expiry.
CREATE FUNCTION app.email_token_issue(
  p_email text, p_purpose text, p_token_hash bytea, p_ttl interval, p_job_id bigint, p_max_live integer
)
RETURNS TABLE (user_id uuid, email text, expire_time timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_user public.users;
  v_expire timestamptz;
BEGIN
  -- The user's row lock serialises issues for one user, so the cap holds.
  SELECT * INTO v_user FROM public.users u WHERE lower(u.email) = lower(p_email) FOR UPDATE;
  IF NOT FOUND OR (p_purpose = 'verify_email' AND v_user.email_verify_time IS NOT NULL) THEN
    RETURN;
  END IF;
  UPDATE public.email_tokens t SET token_hash = p_token_hash
  WHERE t.job_id = p_job_id AND t.used_time IS NULL AND t.expire_time > now()
  RETURNING t.expire_time INTO v_expire;
  IF v_expire IS NULL THEN
    IF EXISTS (SELECT 1 FROM public.email_tokens t WHERE t.job_id = p_job_id) THEN
      RETURN;
    END IF;
    IF (SELECT count(*) FROM public.email_tokens t
        WHERE t.user_id = v_user.id AND t.purpose = p_purpose
          AND t.used_time IS NULL AND t.expire_time > now()) >= p_max_live THEN
      RETURN;
    END IF;
    INSERT INTO public.email_tokens (user_id, purpose, token_hash, job_id, expire_time)
    VALUES (v_user.id, p_purpose, p_token_hash, p_job_id, now() + p_ttl)
    RETURNING email_tokens.expire_time INTO v_expire;
  END IF;
  RETURN QUERY SELECT v_user.id, v_user.email, v_expire;
END
$$;
REVOKE ALL ON FUNCTION app.email_token_issue(text, text, bytea, interval, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.email_token_issue(text, text, bytea, interval, bigint, integer) TO quarters_app;

-- user_end_sessions ends every session of a user in every tenant (refresh
-- tokens revoked, every membership's version moved on) and returns the
-- tenants touched, for the callers below. It is not SECURITY DEFINER and
-- the app role cannot call it: it runs as the owner inside them.
CREATE FUNCTION app.user_end_sessions(p_user_id uuid) RETURNS uuid[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_tenants uuid[];
BEGIN
  UPDATE public.refresh_tokens SET revoke_time = now()
  WHERE user_id = p_user_id AND revoke_time IS NULL;
  WITH bumped AS (
    UPDATE public.memberships SET version = version + 1, update_time = now()
    WHERE user_id = p_user_id
    RETURNING tenant_id
  )
  SELECT coalesce(array_agg(tenant_id), '{}') INTO v_tenants FROM bumped;
  RETURN v_tenants;
END
$$;
REVOKE ALL ON FUNCTION app.user_end_sessions(uuid) FROM PUBLIC;

-- user_verify_email uses a verify_email token, once, and marks its user's
-- address verified. It returns the user, or NULL for a token that is
-- unknown, of another purpose, expired or used. Two concurrent uses of one
-- token: one succeeds (the second finds used_time set).
CREATE FUNCTION app.user_verify_email(p_token_hash bytea) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_user uuid;
BEGIN
  UPDATE public.email_tokens SET used_time = now()
  WHERE token_hash = p_token_hash AND purpose = 'verify_email'
    AND used_time IS NULL AND expire_time > now()
  RETURNING user_id INTO v_user;
  IF v_user IS NULL THEN
    RETURN NULL;
  END IF;
  UPDATE public.users SET email_verify_time = coalesce(email_verify_time, now())
  WHERE id = v_user;
  RETURN v_user;
END
$$;
REVOKE ALL ON FUNCTION app.user_verify_email(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.user_verify_email(bytea) TO quarters_app;

-- user_password_reset uses a set_password token, once: the user's
-- password becomes p_password_hash, the address is verified (the token
-- came through it), every other set_password token of the user dies, and
-- every session everywhere ends (whoever held the old password, or an
-- account made with this email by someone else, is out). It returns the
-- user and the tenants whose cached records must be invalidated, or no
-- row for a token that is unknown, of another purpose, expired or used.
CREATE FUNCTION app.user_password_reset(p_token_hash bytea, p_password_hash text)
RETURNS TABLE (user_id uuid, tenants uuid[])
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_user uuid;
BEGIN
  UPDATE public.email_tokens t SET used_time = now()
  WHERE t.token_hash = p_token_hash AND t.purpose = 'set_password'
    AND t.used_time IS NULL AND t.expire_time > now()
  RETURNING t.user_id INTO v_user;
  IF v_user IS NULL THEN
    RETURN;
  END IF;
  UPDATE public.email_tokens t SET used_time = now()
  WHERE t.user_id = v_user AND t.purpose = 'set_password' AND t.used_time IS NULL;
  UPDATE public.users
  SET password_hash = p_password_hash, email_verify_time = coalesce(email_verify_time, now()), update_time = now()
  WHERE id = v_user;
  RETURN QUERY SELECT v_user, app.user_end_sessions(v_user);
END
$$;
REVOKE ALL ON FUNCTION app.user_password_reset(bytea, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.user_password_reset(bytea, text) TO quarters_app;

-- user_password_change replaces the signed-in user's password, if it is
-- still p_current_hash (the one the server just checked: a concurrent
-- change makes this one fail rather than win silently), kills the user's
-- live set_password tokens, and ends every session everywhere; the caller
-- then starts a fresh session for the user. It returns the tenants to
-- invalidate, or NULL when the password changed meanwhile. Call it only
-- with the id of the authenticated user.
CREATE FUNCTION app.user_password_change(p_user_id uuid, p_current_hash text, p_new_hash text) RETURNS uuid[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  UPDATE public.users SET password_hash = p_new_hash, update_time = now()
  WHERE id = p_user_id AND password_hash = p_current_hash;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  UPDATE public.email_tokens SET used_time = now()
  WHERE user_id = p_user_id AND purpose = 'set_password' AND used_time IS NULL;
  RETURN app.user_end_sessions(p_user_id);
END
$$;
REVOKE ALL ON FUNCTION app.user_password_change(uuid, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.user_password_change(uuid, text, text) TO quarters_app;

-- user_sign_out_everywhere is the signed-in user's own "sign out
-- everywhere", and AcceptInvitation's when it claims an account; it now
-- shares user_end_sessions with the functions above.
CREATE OR REPLACE FUNCTION app.user_sign_out_everywhere(p_user_id uuid) RETURNS SETOF uuid
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT unnest(app.user_end_sessions(p_user_id))
$$;

-- api_keys.created_by is the user whose access created the key: the
-- signed-in admin who called CreateApiKey, or, for a key an API key
-- created, that key's own creator (a chain of keys cannot outlive the
-- person behind it). NULL for the sign-up key, which was handed to
-- whoever signed up, not to a member. Removing a member revokes the keys
-- they created.
ALTER TABLE api_keys ADD COLUMN created_by uuid REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX api_keys_created_by_idx ON api_keys (tenant_id, created_by) WHERE revoke_time IS NULL;

-- River (github.com/riverqueue/river) at run time: it fetches, locks,
-- completes, retries and cleans up jobs, elects a leader and keeps queue
-- and notification rows. Its tables hold no tenant's rows (job arguments
-- name a tenant, read only by the workers), so they carry no RLS. The app
-- role owns none of them (db.CheckAppRole), so River's reindexer is turned
-- off in server/jobs: reindexing is the owner's.
GRANT SELECT, INSERT, UPDATE, DELETE ON river_job, river_leader, river_queue, river_notification TO quarters_app;
GRANT SELECT ON river_migration TO quarters_app;
GRANT USAGE, SELECT ON SEQUENCE river_job_id_seq, river_notification_id_seq TO quarters_app;
