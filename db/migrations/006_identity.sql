-- Identity: people (users), their memberships in tenants, invitations,
-- refresh-token sessions and the keys that sign access tokens.
--
-- A user is global (one person, one email, one password) and may belong to
-- several tenants, like a person in several Slack workspaces. Everything
-- else here belongs to one tenant and follows the data rules of 001: tenant_id
-- leads the primary key, foreign keys include it, RLS is enabled and forced.

CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- email keeps the case it was first given in; uniqueness ignores case.
  email text NOT NULL,
  -- password_hash is an argon2id PHC string; NULL until the person sets a
  -- password (an invited user who has not accepted yet).
  password_hash text,
  create_time timestamptz NOT NULL DEFAULT now(),
  update_time timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE memberships (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role text NOT NULL CHECK (role IN ('member', 'admin', 'owner')),
  -- version is carried by every access token issued for this membership.
  -- Anything that must end those tokens before they expire (a role change,
  -- "sign out everywhere") increments it; the server refuses a token whose
  -- version is not the current one. It reaches every replica through the
  -- tenant cache, so checking it costs no database read per request.
  version bigint NOT NULL DEFAULT 1,
  create_time timestamptz NOT NULL DEFAULT now(),
  update_time timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_list_idx ON memberships (tenant_id, create_time DESC, user_id DESC);
-- A user's tenants across the deployment (app.user_tenants, sign out
-- everywhere) are found through this one; like the platform lists it is
-- read by privileged functions only.
CREATE INDEX memberships_user_idx ON memberships (user_id);

CREATE TABLE invitations (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  email text NOT NULL,
  role text NOT NULL CHECK (role IN ('member', 'admin', 'owner')),
  -- token_hash is SHA-256 of the invitation token, which carries 160
  -- random bits; the token itself is shown once, to whoever invited.
  token_hash bytea NOT NULL CONSTRAINT invitations_token_hash_key UNIQUE,
  -- invited_by is the inviting user; NULL when an API key invited, or for
  -- the owner's set-password invitation made at sign-up.
  invited_by uuid REFERENCES users (id) ON DELETE SET NULL,
  create_time timestamptz NOT NULL DEFAULT now(),
  expire_time timestamptz NOT NULL,
  accept_time timestamptz,
  -- revoke_time is set when an admin revokes the invitation, or when the
  -- member its email belongs to is removed. An invitation ends once, one
  -- way or the other.
  revoke_time timestamptz,
  PRIMARY KEY (tenant_id, id),
  CONSTRAINT invitations_end_once CHECK (accept_time IS NULL OR revoke_time IS NULL)
);
-- Pending invitations (neither accepted nor revoked): the seat count reads
-- the first index, ListInvitations pages the second.
CREATE INDEX invitations_pending_idx ON invitations (tenant_id, expire_time)
WHERE accept_time IS NULL AND revoke_time IS NULL;
CREATE INDEX invitations_list_idx ON invitations (tenant_id, create_time DESC, id DESC)
WHERE accept_time IS NULL AND revoke_time IS NULL;

CREATE TABLE refresh_tokens (
  tenant_id uuid NOT NULL,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL,
  -- family_id is the session: the first token of a sign-in and every token
  -- rotated from it. Reusing a rotated token revokes the whole family.
  family_id uuid NOT NULL,
  token_hash bytea NOT NULL CONSTRAINT refresh_tokens_token_hash_key UNIQUE,
  create_time timestamptz NOT NULL DEFAULT now(),
  expire_time timestamptz NOT NULL,
  -- used_time is set when the token is exchanged for its successor.
  used_time timestamptz,
  revoke_time timestamptz,
  PRIMARY KEY (tenant_id, id),
  -- Removing a member ends their sessions with the membership.
  CONSTRAINT fk_membership FOREIGN KEY (tenant_id, user_id)
  REFERENCES memberships (tenant_id, user_id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (tenant_id, family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (tenant_id, user_id);

ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON memberships
USING (tenant_id = (SELECT app.current_tenant_id()))
WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON invitations
USING (tenant_id = (SELECT app.current_tenant_id()))
WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON refresh_tokens
USING (tenant_id = (SELECT app.current_tenant_id()))
WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

-- users has no tenant_id, but a tenant sees exactly its members: the policy
-- admits a user row only through a membership of the current tenant (whose
-- own policy limits it to that tenant). New users are created by
-- app.user_ensure, since a user must exist before its membership can.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
USING (EXISTS (
  SELECT 1 FROM memberships m
  WHERE m.user_id = users.id AND m.tenant_id = (SELECT app.current_tenant_id())
))
WITH CHECK (EXISTS (
  SELECT 1 FROM memberships m
  WHERE m.user_id = users.id AND m.tenant_id = (SELECT app.current_tenant_id())
));

GRANT SELECT ON users TO quarters_app;
GRANT UPDATE (password_hash, update_time) ON users TO quarters_app;
GRANT SELECT, INSERT, DELETE ON memberships TO quarters_app;
GRANT UPDATE (role, version, update_time) ON memberships TO quarters_app;
GRANT SELECT, INSERT ON invitations TO quarters_app;
GRANT UPDATE (accept_time, revoke_time) ON invitations TO quarters_app;
GRANT SELECT, INSERT ON refresh_tokens TO quarters_app;
GRANT UPDATE (used_time, revoke_time) ON refresh_tokens TO quarters_app;

-- token_keys holds the key set that signs access tokens (token.KeySet's
-- saved form, private seeds included), one row shared by every replica.
-- It belongs to no tenant. Only the server reads it; rotation rewrites it.
CREATE TABLE token_keys (
  id int PRIMARY KEY CHECK (id = 1),
  key_set bytea NOT NULL,
  rotate_time timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT, UPDATE ON token_keys TO quarters_app;

-- Identity lookups: the reads and writes that must happen before a tenant
-- is known (sign-in, refresh, invitation) or that span a user's tenants.
-- As in 001, they run as the owner through owner_lookup policies and are
-- called from db/lookup.go only. Each takes a secret the caller proves it
-- holds (a token hash, an email with its password checked by the server) or
-- the id of the user the server has authenticated.
CREATE POLICY owner_lookup ON users FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY owner_insert ON users FOR INSERT TO CURRENT_USER WITH CHECK (true);
CREATE POLICY owner_lookup ON memberships FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY owner_sign_out ON memberships FOR UPDATE TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY owner_lookup ON invitations FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY owner_lookup ON refresh_tokens FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY owner_sign_out ON refresh_tokens FOR UPDATE TO CURRENT_USER USING (true) WITH CHECK (true);

-- user_ensure returns the id of the user with this email (any case),
-- creating one without a password if there is none. It reveals only an id,
-- which is useless without a membership.
CREATE FUNCTION app.user_ensure(p_email text) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id uuid;
BEGIN
  INSERT INTO public.users (email) VALUES (p_email)
  ON CONFLICT (lower(email)) DO NOTHING
  RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    SELECT id INTO v_id FROM public.users WHERE lower(email) = lower(p_email);
  END IF;
  RETURN v_id;
END
$$;
REVOKE ALL ON FUNCTION app.user_ensure(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.user_ensure(text) TO quarters_app;

-- user_credentials returns the user with this email and the password hash
-- to check, for sign-in. The server answers an unknown email exactly as a
-- wrong password.
CREATE FUNCTION app.user_credentials(p_email text)
RETURNS TABLE (user_id uuid, password_hash text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT id, password_hash FROM public.users WHERE lower(email) = lower(p_email)
$$;
REVOKE ALL ON FUNCTION app.user_credentials(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.user_credentials(text) TO quarters_app;

-- tenant_resolve returns the id of the tenant named by slug or id, for
-- sign-in before any tenant is known. Tenant slugs are public (they are
-- subdomains), so this reveals nothing.
CREATE FUNCTION app.tenant_resolve(p_selector text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT id FROM public.tenants
  WHERE slug = p_selector OR id::text = lower(p_selector)
$$;
REVOKE ALL ON FUNCTION app.tenant_resolve(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.tenant_resolve(text) TO quarters_app;

-- refresh_token_tenant and invitation_tenant return the tenant a token
-- hash belongs to; the rest is read under row-level security as that
-- tenant. Knowing the hash means holding the token.
CREATE FUNCTION app.refresh_token_tenant(p_token_hash bytea) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT tenant_id FROM public.refresh_tokens WHERE token_hash = p_token_hash
$$;
REVOKE ALL ON FUNCTION app.refresh_token_tenant(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.refresh_token_tenant(bytea) TO quarters_app;

CREATE FUNCTION app.invitation_tenant(p_token_hash bytea) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT tenant_id FROM public.invitations WHERE token_hash = p_token_hash
$$;
REVOKE ALL ON FUNCTION app.invitation_tenant(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.invitation_tenant(bytea) TO quarters_app;

-- user_tenants lists the tenants a user belongs to, with the role held in
-- each, for the signed-in user's own view (GetCurrentUser).
CREATE FUNCTION app.user_tenants(p_user_id uuid)
RETURNS TABLE (tenant_id uuid, slug text, name text, role text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT t.id, t.slug, t.name, m.role
  FROM public.memberships m JOIN public.tenants t ON t.id = m.tenant_id
  WHERE m.user_id = p_user_id
  ORDER BY t.slug
$$;
REVOKE ALL ON FUNCTION app.user_tenants(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.user_tenants(uuid) TO quarters_app;

-- user_sign_out_everywhere ends every session of the signed-in user in
-- every tenant: all refresh tokens are revoked and every membership's
-- version moves on, so access tokens already issued fail on their next
-- use. It returns the tenants touched, whose cached records the server
-- then invalidates.
CREATE FUNCTION app.user_sign_out_everywhere(p_user_id uuid) RETURNS SETOF uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  UPDATE public.refresh_tokens SET revoke_time = now()
  WHERE user_id = p_user_id AND revoke_time IS NULL;
  RETURN QUERY
  UPDATE public.memberships SET version = version + 1, update_time = now()
  WHERE user_id = p_user_id
  RETURNING tenant_id;
END
$$;
REVOKE ALL ON FUNCTION app.user_sign_out_everywhere(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.user_sign_out_everywhere(uuid) TO quarters_app;

-- api_key_authenticate now also returns the key's expiry, so the server
-- can cache a live key without serving it past its expire_time. (A
-- function's result type cannot be replaced in place.)
DROP FUNCTION app.api_key_authenticate(bytea);
CREATE FUNCTION app.api_key_authenticate(p_secret_hash bytea)
RETURNS TABLE (
  key_id uuid,
  tenant_id uuid,
  role text,
  secret_hash bytea,
  tenant_slug text,
  tenant_status text,
  expire_time timestamptz
)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT k.id, k.tenant_id, k.role, k.secret_hash, t.slug, t.status, k.expire_time
  FROM public.api_keys k
  JOIN public.tenants t ON t.id = k.tenant_id
  WHERE k.secret_hash = p_secret_hash
    AND k.revoke_time IS NULL
    AND (k.expire_time IS NULL OR k.expire_time > now())
$$;
REVOKE ALL ON FUNCTION app.api_key_authenticate(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.api_key_authenticate(bytea) TO quarters_app;
