// Package document implements quarters.v1.DocumentService.
package document

import (
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"unsafe"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/jobs"
	"github.com/quarters-dev/quarters/internal/page"
	"github.com/quarters-dev/quarters/internal/tenancy"
	"github.com/quarters-dev/quarters/internal/webhook"
)

// Service implements quartersv1connect.DocumentServiceHandler. Requests
// arrive authenticated, bound to a tenant and validated.
type Service struct {
	db   *db.DB
	jobs *jobs.Client
}

var _ quartersv1connect.DocumentServiceHandler = (*Service)(nil)

// New returns the service; j enqueues the webhook deliveries of its
// events (document.created, document.updated, document.deleted). Reads
// emit nothing and keep InTenant's lazy transaction.
func New(d *db.DB, j *jobs.Client) *Service { return &Service{db: d, jobs: j} }

// CreateDocument creates a document. The composite foreign key (tenant_id,
// project_id) makes another tenant's project as absent as a made-up one:
// both are NOT_FOUND "project not found".
func (s *Service) CreateDocument(ctx context.Context, req *connect.Request[quartersv1.CreateDocumentRequest]) (*connect.Response[quartersv1.CreateDocumentResponse], error) {
	t := tenancy.MustFromContext(ctx)
	var d *quartersv1.Document
	err := webhook.InTx(ctx, s.db, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		row, err := q.DocumentInsert(ctx, dbsqlc.DocumentInsertParams{
			TenantID:  t.ID,
			ProjectID: uuid.MustParse(req.Msg.GetProjectId()),
			Title:     req.Msg.GetTitle(),
			Content:   req.Msg.GetContent(),
		})
		if err != nil {
			return err
		}
		d = toProto(row)
		return webhook.Emit(ctx, q, tx, s.jobs, t, webhook.DocumentCreated, d)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.CreateDocumentResponse{Document: d}), nil
}

// GetDocument returns one document; NOT_FOUND if the tenant has none with the id.
func (s *Service) GetDocument(ctx context.Context, req *connect.Request[quartersv1.GetDocumentRequest]) (*connect.Response[quartersv1.GetDocumentResponse], error) {
	row, err := db.InTenantV(ctx, s.db, func(q *dbsqlc.Queries) (dbsqlc.Document, error) {
		return q.DocumentGet(ctx, dbsqlc.DocumentGetParams{
			TenantID: tenancy.MustFromContext(ctx).ID,
			ID:       uuid.MustParse(req.Msg.GetId()),
		})
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.GetDocumentResponse{Document: toProto(row)}), nil
}

// ListDocuments lists the tenant's documents newest first, optionally of one
// project. The page token is bound to the project filter.
func (s *Service) ListDocuments(ctx context.Context, req *connect.Request[quartersv1.ListDocumentsRequest]) (*connect.Response[quartersv1.ListDocumentsResponse], error) {
	filter := req.Msg.GetProjectId()
	rows, next, err := page.Load(req.Msg, filter, func(c page.Cursor, limit int32) ([]dbsqlc.Document, error) {
		return db.InTenantV(ctx, s.db, func(q *dbsqlc.Queries) ([]dbsqlc.Document, error) {
			tenantID := tenancy.MustFromContext(ctx).ID
			if filter == "" {
				return q.DocumentList(ctx, dbsqlc.DocumentListParams{
					TenantID: tenantID, BeforeTime: c.Time, BeforeID: c.ID, PageLimit: limit,
				})
			}
			return q.DocumentListByProject(ctx, dbsqlc.DocumentListByProjectParams{
				TenantID: tenantID, ProjectID: uuid.MustParse(filter),
				BeforeTime: c.Time, BeforeID: c.ID, PageLimit: limit,
			})
		})
	}, position)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.ListDocumentsResponse{NextPageToken: next, Documents: listToProto(rows)}), nil
}

// UpdateDocument changes the fields named in the update mask.
func (s *Service) UpdateDocument(ctx context.Context, req *connect.Request[quartersv1.UpdateDocumentRequest]) (*connect.Response[quartersv1.UpdateDocumentResponse], error) {
	d, paths := req.Msg.GetDocument(), req.Msg.GetUpdateMask().GetPaths()
	t := tenancy.MustFromContext(ctx)
	var out *quartersv1.Document
	err := webhook.InTx(ctx, s.db, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		row, err := q.DocumentUpdate(ctx, dbsqlc.DocumentUpdateParams{
			TenantID:   t.ID,
			ID:         uuid.MustParse(d.GetId()),
			SetTitle:   slices.Contains(paths, "title"),
			Title:      d.GetTitle(),
			SetContent: slices.Contains(paths, "content"),
			Content:    d.GetContent(),
		})
		if err != nil {
			return err
		}
		out = toProto(row)
		return webhook.Emit(ctx, q, tx, s.jobs, t, webhook.DocumentUpdated, out)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.UpdateDocumentResponse{Document: out}), nil
}

// DeleteDocument deletes a document.
func (s *Service) DeleteDocument(ctx context.Context, req *connect.Request[quartersv1.DeleteDocumentRequest]) (*connect.Response[quartersv1.DeleteDocumentResponse], error) {
	t := tenancy.MustFromContext(ctx)
	err := webhook.InTx(ctx, s.db, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		n, err := q.DocumentDelete(ctx, dbsqlc.DocumentDeleteParams{TenantID: t.ID, ID: uuid.MustParse(req.Msg.GetId())})
		if err != nil {
			return err
		}
		if n == 0 {
			return connect.NewError(connect.CodeNotFound, errors.New("document not found"))
		}
		// The event names the document that is gone; its fields went with it.
		return webhook.Emit(ctx, q, tx, s.jobs, t, webhook.DocumentDeleted, &quartersv1.Document{Id: req.Msg.GetId()})
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.DeleteDocumentResponse{}), nil
}

func position(r dbsqlc.Document) page.Cursor { return page.Cursor{Time: r.CreateTime, ID: r.ID} }

func toProto(r dbsqlc.Document) *quartersv1.Document {
	return &quartersv1.Document{
		Id:         r.ID.String(),
		ProjectId:  r.ProjectID.String(),
		Title:      r.Title,
		Content:    r.Content,
		CreateTime: timestamppb.New(r.CreateTime),
		UpdateTime: timestamppb.New(r.UpdateTime),
	}
}

// listToProto converts a page with a handful of allocations instead of
// five per document (issue 10): the messages, their timestamps and the
// ids' text each come from one slice.
func listToProto(rows []dbsqlc.Document) []*quartersv1.Document {
	docs := make([]quartersv1.Document, len(rows))
	times := make([]timestamppb.Timestamp, 2*len(rows))
	ids := newUUIDText(2 * len(rows))
	out := make([]*quartersv1.Document, len(rows))
	for i, r := range rows {
		d, create, update := &docs[i], &times[2*i], &times[2*i+1]
		create.Seconds, create.Nanos = r.CreateTime.Unix(), int32(r.CreateTime.Nanosecond())
		update.Seconds, update.Nanos = r.UpdateTime.Unix(), int32(r.UpdateTime.Nanosecond())
		d.Id, d.ProjectId, d.Title, d.Content = ids.String(r.ID), ids.String(r.ProjectID), r.Title, r.Content
		d.CreateTime, d.UpdateTime = create, update
		out[i] = d
	}
	return out
}

// uuidText formats uuids into one buffer sized for n of them; each string
// points into it, and the buffer is never written again where a string
// points.
type uuidText struct{ buf []byte }

func newUUIDText(n int) *uuidText { return &uuidText{buf: make([]byte, 0, n*36)} }

func (u *uuidText) String(id uuid.UUID) string {
	if cap(u.buf)-len(u.buf) < 36 {
		return id.String()
	}
	start := len(u.buf)
	u.buf = u.buf[:start+36]
	uuidEncode(u.buf[start:], id)
	return unsafe.String(&u.buf[start], 36)
}

// uuidEncode writes id's canonical text form (as uuid.UUID.String) into
// dst, which has room for 36 bytes.
func uuidEncode(dst []byte, id uuid.UUID) {
	hex.Encode(dst, id[:4])
	dst[8] = '-'
	hex.Encode(dst[9:13], id[4:6])
	dst[13] = '-'
	hex.Encode(dst[14:18], id[6:8])
	dst[18] = '-'
	hex.Encode(dst[19:23], id[8:10])
	dst[23] = '-'
	hex.Encode(dst[24:], id[10:])
}
