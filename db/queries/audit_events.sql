-- AuditEventInsert appends one audit record. There is no update or
-- delete: the app role may not change the audit trail.
-- name: AuditEventInsert :one
INSERT INTO audit_events (tenant_id, actor, action, before, after)
VALUES (@tenant_id, @actor, @action, @before, @after)
RETURNING *;

-- AuditEventList pages one tenant's audit records newest first; see
-- ProjectList for the cursor.
-- name: AuditEventList :many
SELECT * FROM audit_events
WHERE tenant_id = @tenant_id
  AND (create_time, id) < (@before_time::timestamptz, @before_id::uuid)
ORDER BY create_time DESC, id DESC
LIMIT @page_limit;
