-- name: WebhookEndpointInsert :one
INSERT INTO webhook_endpoints (tenant_id, url, event_types, enabled, secret)
VALUES (@tenant_id, @url, @event_types, @enabled, @secret)
RETURNING *;

-- name: WebhookEndpointGet :one
SELECT * FROM webhook_endpoints
WHERE tenant_id = @tenant_id AND id = @id;

-- WebhookEndpointList is every endpoint of the tenant, newest first; a
-- tenant has few.
-- name: WebhookEndpointList :many
SELECT * FROM webhook_endpoints
WHERE tenant_id = @tenant_id
ORDER BY create_time DESC, id DESC
LIMIT 1000;

-- name: WebhookEndpointUpdate :one
UPDATE webhook_endpoints SET
  url = CASE WHEN @set_url::bool THEN @url::text ELSE url END,
  event_types = CASE WHEN @set_event_types::bool THEN @event_types::text [] ELSE event_types END,
  enabled = CASE WHEN @set_enabled::bool THEN @enabled::bool ELSE enabled END,
  disabled_reason = CASE WHEN @set_enabled::bool THEN '' ELSE disabled_reason END,
  update_time = now()
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;

-- name: WebhookEndpointDelete :execrows
DELETE FROM webhook_endpoints
WHERE tenant_id = @tenant_id AND id = @id;

-- WebhookEndpointRotateSecret keeps the current secret valid for
-- @overlap more, as previous_secret.
-- name: WebhookEndpointRotateSecret :one
UPDATE webhook_endpoints SET
  previous_secret = secret,
  previous_secret_expire_time = now() + @overlap::interval,
  secret = @secret,
  secret_rotate_time = now(),
  update_time = now()
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;

-- WebhookEventInsert writes an event and a pending delivery to each of
-- the tenant's enabled endpoints that subscribed to its type, in one
-- statement, and returns the deliveries' ids. When nobody listens it
-- writes nothing: the outbox holds only events someone will receive.
-- name: WebhookEventInsert :many
WITH ev AS (
  INSERT INTO webhook_events (tenant_id, type, payload)
  SELECT @tenant_id, @type, @payload
  WHERE EXISTS (
    SELECT 1 FROM webhook_endpoints l
    WHERE l.tenant_id = @tenant_id AND l.enabled AND @type = ANY (l.event_types)
  )
  RETURNING tenant_id, id, type
)
INSERT INTO webhook_deliveries (tenant_id, endpoint_id, event_id)
SELECT ev.tenant_id, e.id, ev.id
FROM ev JOIN webhook_endpoints e ON e.tenant_id = ev.tenant_id
WHERE e.enabled AND ev.type = ANY (e.event_types)
RETURNING id;

-- WebhookDeliveryForSend is what a delivery job needs: the delivery, its
-- event and its endpoint (with the secrets still valid).
-- name: WebhookDeliveryForSend :one
SELECT d.id, d.endpoint_id, d.status, d.attempts, ev.id AS event_id, ev.type AS event_type, ev.payload, ev.create_time AS event_time,
  e.url, e.enabled, e.secret,
  coalesce(CASE WHEN e.previous_secret_expire_time > now() THEN e.previous_secret END, '')::text AS previous_secret
FROM webhook_deliveries d
JOIN webhook_events ev ON ev.tenant_id = d.tenant_id AND ev.id = d.event_id
JOIN webhook_endpoints e ON e.tenant_id = d.tenant_id AND e.id = d.endpoint_id
WHERE d.tenant_id = @tenant_id AND d.id = @id;

-- name: WebhookDeliveryRecord :exec
UPDATE webhook_deliveries SET
  status = @status,
  attempts = attempts + 1,
  response_code = sqlc.narg(response_code),
  error = @error,
  last_attempt_time = now()
WHERE tenant_id = @tenant_id AND id = @id;

-- name: WebhookDeliveryFail :exec
UPDATE webhook_deliveries SET status = 'failed', error = @error
WHERE tenant_id = @tenant_id AND id = @id AND status = 'pending';

-- name: WebhookDeliveryGet :one
SELECT d.*, ev.type AS event_type
FROM webhook_deliveries d
JOIN webhook_events ev ON ev.tenant_id = d.tenant_id AND ev.id = d.event_id
WHERE d.tenant_id = @tenant_id AND d.id = @id;

-- name: WebhookDeliveryList :many
SELECT d.*, ev.type AS event_type
FROM webhook_deliveries d
JOIN webhook_events ev ON ev.tenant_id = d.tenant_id AND ev.id = d.event_id
WHERE d.tenant_id = @tenant_id AND d.endpoint_id = @endpoint_id
ORDER BY d.create_time DESC, d.id DESC
LIMIT @page_limit;

-- WebhookDeliveryRedeliver is a new pending delivery of a delivery's
-- event to its endpoint.
-- name: WebhookDeliveryRedeliver :one
INSERT INTO webhook_deliveries (tenant_id, endpoint_id, event_id)
SELECT o.tenant_id, o.endpoint_id, o.event_id FROM webhook_deliveries o
WHERE o.tenant_id = @tenant_id AND o.id = @id
RETURNING id;

-- WebhookEndpointDisableFailing disables an endpoint whose delivery has
-- just failed for good (every attempt over about a day), unless another
-- delivery to it succeeded meanwhile: a receiver that is down for a day,
-- not one that refuses one message. It returns the rows disabled (0 or 1).
-- name: WebhookEndpointDisableFailing :execrows
UPDATE webhook_endpoints e SET enabled = false, disabled_reason = @reason, update_time = now()
WHERE e.tenant_id = @tenant_id AND e.id = (
    SELECT d.endpoint_id FROM webhook_deliveries d WHERE d.tenant_id = @tenant_id AND d.id = @delivery_id
  )
  AND e.enabled
  AND NOT EXISTS (
    SELECT 1 FROM webhook_deliveries s
    WHERE s.tenant_id = e.tenant_id AND s.endpoint_id = e.id AND s.status = 'succeeded'
      AND s.last_attempt_time > (
        SELECT d.create_time FROM webhook_deliveries d WHERE d.tenant_id = @tenant_id AND d.id = @delivery_id
      )
  );
