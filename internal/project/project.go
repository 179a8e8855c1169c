// Package project implements quarters.v1.ProjectService.
package project

import (
	"context"
	"errors"
	"slices"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/page"
	"github.com/quarters-dev/quarters/internal/quota"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// Service implements quartersv1connect.ProjectServiceHandler. Requests
// arrive authenticated, bound to a tenant and validated.
type Service struct {
	db *db.DB
}

var _ quartersv1connect.ProjectServiceHandler = (*Service)(nil)

// New returns the service.
func New(d *db.DB) *Service { return &Service{db: d} }

// CreateProject creates a project in the caller's tenant, within the
// plan's max_projects: RESOURCE_EXHAUSTED with a QuotaFailure otherwise.
func (s *Service) CreateProject(ctx context.Context, req *connect.Request[quartersv1.CreateProjectRequest]) (*connect.Response[quartersv1.CreateProjectResponse], error) {
	t := tenancy.MustFromContext(ctx)
	row, err := db.InTenantV(ctx, s.db, func(q *dbsqlc.Queries) (dbsqlc.Project, error) {
		// Count under a per-tenant lock: parallel creates cannot all see
		// room for one more.
		if err := q.ProjectLockQuota(ctx, t.ID.String()); err != nil {
			return dbsqlc.Project{}, err
		}
		n, err := q.ProjectCount(ctx, t.ID)
		if err != nil {
			return dbsqlc.Project{}, err
		}
		if n >= t.Limits.MaxProjects {
			return dbsqlc.Project{}, quota.Exceeded(t, "max_projects", t.Limits.MaxProjects, "projects", "delete some or upgrade the plan")
		}
		return q.ProjectInsert(ctx, dbsqlc.ProjectInsertParams{
			TenantID:    t.ID,
			Name:        req.Msg.GetName(),
			Description: req.Msg.GetDescription(),
		})
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.CreateProjectResponse{Project: toProto(row)}), nil
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
	row, err := db.InTenantV(ctx, s.db, func(q *dbsqlc.Queries) (dbsqlc.Project, error) {
		return q.ProjectUpdate(ctx, dbsqlc.ProjectUpdateParams{
			TenantID:       tenancy.MustFromContext(ctx).ID,
			ID:             uuid.MustParse(p.GetId()),
			SetName:        slices.Contains(paths, "name"),
			Name:           p.GetName(),
			SetDescription: slices.Contains(paths, "description"),
			Description:    p.GetDescription(),
		})
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.UpdateProjectResponse{Project: toProto(row)}), nil
}

// DeleteProject deletes a project and its documents.
func (s *Service) DeleteProject(ctx context.Context, req *connect.Request[quartersv1.DeleteProjectRequest]) (*connect.Response[quartersv1.DeleteProjectResponse], error) {
	n, err := db.InTenantV(ctx, s.db, func(q *dbsqlc.Queries) (int64, error) {
		return q.ProjectDelete(ctx, dbsqlc.ProjectDeleteParams{
			TenantID: tenancy.MustFromContext(ctx).ID,
			ID:       uuid.MustParse(req.Msg.GetId()),
		})
	})
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("project not found"))
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
