// Package project implements quarters.v1.ProjectService.
package project

import (
	"context"
	"errors"
	"slices"

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
	"github.com/quarters-dev/quarters/internal/quota"
	"github.com/quarters-dev/quarters/internal/tenancy"
	"github.com/quarters-dev/quarters/internal/webhook"
)

// Service implements quartersv1connect.ProjectServiceHandler. Requests
// arrive authenticated, bound to a tenant and validated.
type Service struct {
	db   *db.DB
	jobs *jobs.Client
}

var _ quartersv1connect.ProjectServiceHandler = (*Service)(nil)

// New returns the service; j enqueues the webhook deliveries of its
// events.
func New(d *db.DB, j *jobs.Client) *Service { return &Service{db: d, jobs: j} }

// CreateProject creates a project in the caller's tenant, within the
// plan's max_projects: RESOURCE_EXHAUSTED with a QuotaFailure otherwise.
func (s *Service) CreateProject(ctx context.Context, req *connect.Request[quartersv1.CreateProjectRequest]) (*connect.Response[quartersv1.CreateProjectResponse], error) {
	t := tenancy.MustFromContext(ctx)
	var p *quartersv1.Project
	err := webhook.InTx(ctx, s.db, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		// Count under a per-tenant lock: parallel creates cannot all see
		// room for one more.
		if err := q.ProjectLockQuota(ctx, t.ID.String()); err != nil {
			return err
		}
		n, err := q.ProjectCount(ctx, t.ID)
		if err != nil {
			return err
		}
		if n >= t.Limits.MaxProjects {
			return quota.Exceeded(t, "max_projects", t.Limits.MaxProjects, "projects", "delete some or upgrade the plan")
		}
		row, err := q.ProjectInsert(ctx, dbsqlc.ProjectInsertParams{
			TenantID:    t.ID,
			Name:        req.Msg.GetName(),
			Description: req.Msg.GetDescription(),
		})
		if err != nil {
			return err
		}
		p = toProto(row)
		return webhook.Emit(ctx, q, tx, s.jobs, t, webhook.ProjectCreated, p)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.CreateProjectResponse{Project: p}), nil
}

// GetProject returns one project; NOT_FOUND if the tenant has none with the id.
func (s *Service) GetProject(ctx context.Context, req *connect.Request[quartersv1.GetProjectRequest]) (*connect.Response[quartersv1.GetProjectResponse], error) {
	row, err := db.InTenantV(ctx, s.db, func(q *dbsqlc.Queries) (dbsqlc.Project, error) {
		return q.ProjectGet(ctx, dbsqlc.ProjectGetParams{
			TenantID: tenancy.MustFromContext(ctx).ID,
			ID:       uuid.MustParse(req.Msg.GetId()),
		})
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.GetProjectResponse{Project: toProto(row)}), nil
}

// ListProjects lists the tenant's projects, newest first.
func (s *Service) ListProjects(ctx context.Context, req *connect.Request[quartersv1.ListProjectsRequest]) (*connect.Response[quartersv1.ListProjectsResponse], error) {
	rows, next, err := page.Load(req.Msg, "", func(c page.Cursor, limit int32) ([]dbsqlc.Project, error) {
		return db.InTenantV(ctx, s.db, func(q *dbsqlc.Queries) ([]dbsqlc.Project, error) {
			return q.ProjectList(ctx, dbsqlc.ProjectListParams{
				TenantID: tenancy.MustFromContext(ctx).ID, BeforeTime: c.Time, BeforeID: c.ID, PageLimit: limit,
			})
		})
	}, position)
	if err != nil {
		return nil, err
	}
	resp := &quartersv1.ListProjectsResponse{NextPageToken: next, Projects: make([]*quartersv1.Project, len(rows))}
	for i, r := range rows {
		resp.Projects[i] = toProto(r)
	}
	return connect.NewResponse(resp), nil
}

// UpdateProject changes the fields named in the update mask.
func (s *Service) UpdateProject(ctx context.Context, req *connect.Request[quartersv1.UpdateProjectRequest]) (*connect.Response[quartersv1.UpdateProjectResponse], error) {
	p, paths := req.Msg.GetProject(), req.Msg.GetUpdateMask().GetPaths()
	t := tenancy.MustFromContext(ctx)
	var out *quartersv1.Project
	err := webhook.InTx(ctx, s.db, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		row, err := q.ProjectUpdate(ctx, dbsqlc.ProjectUpdateParams{
			TenantID:       t.ID,
			ID:             uuid.MustParse(p.GetId()),
			SetName:        slices.Contains(paths, "name"),
			Name:           p.GetName(),
			SetDescription: slices.Contains(paths, "description"),
			Description:    p.GetDescription(),
		})
		if err != nil {
			return err
		}
		out = toProto(row)
		return webhook.Emit(ctx, q, tx, s.jobs, t, webhook.ProjectUpdated, out)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.UpdateProjectResponse{Project: out}), nil
}

// DeleteProject deletes a project and its documents.
func (s *Service) DeleteProject(ctx context.Context, req *connect.Request[quartersv1.DeleteProjectRequest]) (*connect.Response[quartersv1.DeleteProjectResponse], error) {
	t := tenancy.MustFromContext(ctx)
	err := webhook.InTx(ctx, s.db, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		n, err := q.ProjectDelete(ctx, dbsqlc.ProjectDeleteParams{TenantID: t.ID, ID: uuid.MustParse(req.Msg.GetId())})
		if err != nil {
			return err
		}
		if n == 0 {
			return connect.NewError(connect.CodeNotFound, errors.New("project not found"))
		}
		// The event names the project that is gone; its fields went with it.
		return webhook.Emit(ctx, q, tx, s.jobs, t, webhook.ProjectDeleted, &quartersv1.Project{Id: req.Msg.GetId()})
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.DeleteProjectResponse{}), nil
}

func position(r dbsqlc.Project) page.Cursor { return page.Cursor{Time: r.CreateTime, ID: r.ID} }

func toProto(r dbsqlc.Project) *quartersv1.Project {
	return &quartersv1.Project{
		Id:          r.ID.String(),
		Name:        r.Name,
		Description: r.Description,
		CreateTime:  timestamppb.New(r.CreateTime),
		UpdateTime:  timestamppb.New(r.UpdateTime),
	}
}
