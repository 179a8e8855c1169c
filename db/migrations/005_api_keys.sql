-- API key management (AuthService): the app role may revoke keys and
-- record when they were last used; nothing else about a key changes.
ALTER TABLE api_keys ADD COLUMN last_used_time timestamptz;

GRANT UPDATE (revoke_time, last_used_time) ON api_keys TO quarters_app;

CREATE INDEX api_keys_list_idx ON api_keys (tenant_id, create_time DESC, id DESC);
