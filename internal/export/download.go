package export

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
)

// LinkTTL is how long a download link works.
const LinkTTL = 15 * time.Minute

// DownloadPattern is the route of DownloadHandler.
const DownloadPattern = "GET /v1/exports/{tenant}/{export}"

// NewLink returns a download token and its SHA-256, for
// TenantExportSetDownload, and the path that downloads the export with it.
// Only the hash is stored: the path is the credential, shown once.
func NewLink(tenantID, exportID uuid.UUID) (path string, hash []byte) {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails
	token := base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(token))
	return fmt.Sprintf("/v1/exports/%s/%s?token=%s", tenantID, exportID, token), sum[:]
}

// DownloadHandler serves a finished export's archive to whoever holds a
// live link from GetTenantExport: it acts for the tenant the path names
// (row-level security on) and answers 404, whatever is wrong (no such
// export, another tenant's, a wrong or expired token), so a guess learns
// nothing.
func DownloadHandler(d *db.DB, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenantID, err1 := uuid.Parse(r.PathValue("tenant"))
		exportID, err2 := uuid.Parse(r.PathValue("export"))
		token := r.URL.Query().Get("token")
		if err1 != nil || err2 != nil || token == "" {
			http.NotFound(w, r)
			return
		}
		var row dbsqlc.TenantExportDownloadRow
		err := d.ActAs(r.Context(), tenantID, func(q *dbsqlc.Queries) error {
			var err error
			row, err = q.TenantExportDownload(r.Context(), dbsqlc.TenantExportDownloadParams{TenantID: tenantID, ID: exportID})
			return err
		})
		if errors.Is(err, db.ErrNotFound) {
			http.NotFound(w, r)
			return
		}
		if err != nil {
			logger.ErrorContext(r.Context(), "export download", "error", err, "tenant_id", tenantID, "export_id", exportID)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		sum := sha256.Sum256([]byte(token))
		if row.DownloadTokenHash == nil || subtle.ConstantTimeCompare(sum[:], row.DownloadTokenHash) != 1 ||
			row.DownloadExpireTime == nil || !time.Now().Before(*row.DownloadExpireTime) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/gzip")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="quarters-export-%s.tar.gz"`, exportID))
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(row.Archive)
	})
}
