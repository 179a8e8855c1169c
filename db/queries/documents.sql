-- name: DocumentInsert :one
INSERT INTO documents (tenant_id, project_id, title, content)
VALUES (@tenant_id, @project_id, @title, @content)
RETURNING *;

-- name: DocumentGet :one
SELECT * FROM documents
WHERE tenant_id = @tenant_id AND id = @id;

-- DocumentList pages newest first; see ProjectList for the cursor.
-- name: DocumentList :many
SELECT * FROM documents
WHERE tenant_id = @tenant_id
  AND (create_time, id) < (@before_time::timestamptz, @before_id::uuid)
ORDER BY create_time DESC, id DESC
LIMIT @page_limit;

-- name: DocumentListByProject :many
SELECT * FROM documents
WHERE tenant_id = @tenant_id AND project_id = @project_id
  AND (create_time, id) < (@before_time::timestamptz, @before_id::uuid)
ORDER BY create_time DESC, id DESC
LIMIT @page_limit;

-- name: DocumentUpdate :one
UPDATE documents SET
  title = CASE WHEN @set_title::bool THEN @title::text ELSE title END,
  content = CASE WHEN @set_content::bool THEN @content::text ELSE content END,
  update_time = now()
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;

-- name: DocumentDelete :execrows
DELETE FROM documents
WHERE tenant_id = @tenant_id AND id = @id;
