package tenantsvc

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/export"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// ExportTenant records an export and enqueues its job in the same
// transaction: a failed call leaves neither.
func (s *Service) ExportTenant(ctx context.Context, _ *connect.Request[quartersv1.ExportTenantRequest]) (*connect.Response[quartersv1.ExportTenantResponse], error) {
	id := tenancy.MustFromContext(ctx).ID
	var e dbsqlc.TenantExportInsertRow
	err := s.p.DB.InTenantTx(ctx, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		var err error
		if e, err = q.TenantExportInsert(ctx, id); err != nil {
			return fmt.Errorf("insert export: %w", err)
		}
		return s.p.Jobs.InsertTx(ctx, tx, export.Args{TenantID: id, ExportID: e.ID})
	})
	if err != nil {
		return nil, err
	}
	out, err := exportToProto(dbsqlc.TenantExportGetRow(e))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.ExportTenantResponse{Export: out}), nil
}

// GetTenantExport returns the export, with a fresh download link once it
// is done. NOT_FOUND for an unknown export or another tenant's.
func (s *Service) GetTenantExport(ctx context.Context, req *connect.Request[quartersv1.GetTenantExportRequest]) (*connect.Response[quartersv1.GetTenantExportResponse], error) {
	tenantID, exportID := tenancy.MustFromContext(ctx).ID, uuid.MustParse(req.Msg.GetExportId())
	var (
		out *quartersv1.TenantExport
	)
	err := s.p.DB.InTenant(ctx, func(q *dbsqlc.Queries) error {
		e, err := q.TenantExportGet(ctx, dbsqlc.TenantExportGetParams{TenantID: tenantID, ID: exportID})
		if err != nil {
			return err
		}
		if out, err = exportToProto(e); err != nil || !out.Done {
			return err
		}
		path, hash := export.NewLink(tenantID, exportID)
		expire := time.Now().Add(export.LinkTTL)
		if err := q.TenantExportSetDownload(ctx, dbsqlc.TenantExportSetDownloadParams{
			TenantID: tenantID, ID: exportID, DownloadTokenHash: hash, DownloadExpireTime: &expire,
		}); err != nil {
			return fmt.Errorf("arm download: %w", err)
		}
		out.DownloadPath, out.DownloadExpireTime = path, timestamppb.New(expire)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.GetTenantExportResponse{Export: out}), nil
}

func exportToProto(e dbsqlc.TenantExportGetRow) (*quartersv1.TenantExport, error) {
	out := &quartersv1.TenantExport{Id: e.ID.String(), Done: e.State == "done", CreateTime: timestamppb.New(e.CreateTime)}
	if e.FinishTime != nil {
		out.FinishTime = timestamppb.New(*e.FinishTime)
	}
	if e.Sha256 != nil {
		out.Sha256 = hex.EncodeToString(e.Sha256)
	}
	if e.Manifest != nil {
		var m export.Manifest
		if err := json.Unmarshal(e.Manifest, &m); err != nil {
			return nil, fmt.Errorf("decode export manifest: %w", err)
		}
		for _, t := range m.Tables {
			out.Tables = append(out.Tables, &quartersv1.TenantExportTable{Name: t.Name, File: t.File, Rows: int64(t.Rows), Sha256: t.SHA256})
		}
	}
	return out, nil
}
