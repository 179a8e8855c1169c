-- TenantExportInsert records a requested export, pending until its job
-- has written the archive.
-- name: TenantExportInsert :one
INSERT INTO tenant_exports (tenant_id) VALUES (@tenant_id)
RETURNING tenant_id, id, state, sha256, manifest, create_time, finish_time;

-- TenantExportGet reads an export without its archive.
-- name: TenantExportGet :one
SELECT tenant_id, id, state, sha256, manifest, create_time, finish_time
FROM tenant_exports WHERE tenant_id = @tenant_id AND id = @id;

-- TenantExportLock locks a pending export for the job writing it, so two
-- attempts never both write; a done (or deleted) export is no row.
-- name: TenantExportLock :one
SELECT id FROM tenant_exports
WHERE tenant_id = @tenant_id AND id = @id AND state = 'pending'
FOR UPDATE;

-- TenantExportFinish stores the archive.
-- name: TenantExportFinish :exec
UPDATE tenant_exports
SET state = 'done', archive = @archive, sha256 = @sha256, manifest = @manifest, finish_time = now()
WHERE tenant_id = @tenant_id AND id = @id;

-- TenantExportArchive reads a finished export's archive.
-- name: TenantExportArchive :one
SELECT archive, sha256 FROM tenant_exports
WHERE tenant_id = @tenant_id AND id = @id AND state = 'done';

-- TenantExportSetDownload arms a finished export's download link.
-- name: TenantExportSetDownload :exec
UPDATE tenant_exports
SET download_token_hash = @download_token_hash, download_expire_time = @download_expire_time
WHERE tenant_id = @tenant_id AND id = @id AND state = 'done';

-- TenantExportDownload reads a finished export's archive with its link.
-- name: TenantExportDownload :one
SELECT archive, download_token_hash, download_expire_time FROM tenant_exports
WHERE tenant_id = @tenant_id AND id = @id AND state = 'done';
