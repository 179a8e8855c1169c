// Package plan implements quarters.v1.PlanService: the caller's plan, its
// effective limits and features, and usage against them.
package plan

import (
	"context"

	"connectrpc.com/connect"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/protoconv"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// Service implements quartersv1connect.PlanServiceHandler.
type Service struct {
	db *db.DB
}

var _ quartersv1connect.PlanServiceHandler = (*Service)(nil)

// New returns the service.
func New(d *db.DB) *Service { return &Service{db: d} }

// GetPlan returns the tenant's effective plan (from the tenant record the
// interceptor bound, so it matches what the server enforces) and usage.
func (s *Service) GetPlan(ctx context.Context, _ *connect.Request[quartersv1.GetPlanRequest]) (*connect.Response[quartersv1.GetPlanResponse], error) {
	t := tenancy.MustFromContext(ctx)
	usage, err := db.InTenantV(ctx, s.db, func(q *dbsqlc.Queries) (*quartersv1.Usage, error) {
		projects, err := q.ProjectCount(ctx, t.ID)
		if err != nil {
			return nil, err
		}
		seats, err := q.MembershipCountSeats(ctx, t.ID)
		return &quartersv1.Usage{Projects: projects, Members: int64(seats)}, err
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.GetPlanResponse{
		Plan:     t.Plan,
		Limits:   protoconv.Limits(t.Limits),
		Features: t.FeatureList(),
		Usage:    usage,
	}), nil
}
