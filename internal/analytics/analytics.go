// Package analytics implements quarters.v1.AnalyticsService: a tenant's
// own API usage by day and by procedure, and what its calls cost the
// database by day.
package analytics

import (
	"context"

	"connectrpc.com/connect"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/metering"
	"github.com/quarters-dev/quarters/internal/protoconv"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

const dateLayout = protoconv.DateLayout

// Service implements quartersv1connect.AnalyticsServiceHandler.
type Service struct {
	db    *db.DB
	usage *metering.Usage
	cost  *metering.Cost
}

var _ quartersv1connect.AnalyticsServiceHandler = (*Service)(nil)

// New returns the service; u's and c's unflushed counts of the caller's
// tenant are written before each report so it includes the calls this
// replica just served.
func New(d *db.DB, u *metering.Usage, c *metering.Cost) *Service {
	return &Service{db: d, usage: u, cost: c}
}

// GetUsage reports usage over an inclusive UTC date range.
func (s *Service) GetUsage(ctx context.Context, req *connect.Request[quartersv1.GetUsageRequest]) (*connect.Response[quartersv1.GetUsageResponse], error) {
	first, last, err := protoconv.DateRange(req.Msg.GetStartDate(), req.Msg.GetEndDate())
	if err != nil {
		return nil, err
	}
	t := tenancy.MustFromContext(ctx)
	// This tenant's pending counts only: one tenant's request must not
	// carry (nor wait for, nor fail with) every tenant's.
	if err := s.usage.FlushTenant(ctx, t.ID); err != nil {
		return nil, err
	}
	var (
		days  []dbsqlc.UsageByDayRow
		procs []dbsqlc.UsageByProcedureRow
	)
	err = s.db.InTenant(ctx, func(q *dbsqlc.Queries) error {
		var err error
		if days, err = q.UsageByDay(ctx, dbsqlc.UsageByDayParams{TenantID: t.ID, FirstDay: first, LastDay: last}); err != nil {
			return err
		}
		procs, err = q.UsageByProcedure(ctx, dbsqlc.UsageByProcedureParams{TenantID: t.ID, FirstDay: first, LastDay: last})
		return err
	})
	if err != nil {
		return nil, err
	}
	resp := &quartersv1.GetUsageResponse{}
	byDay := make(map[string]dbsqlc.UsageByDayRow, len(days))
	for _, d := range days {
		byDay[d.Day.Format(dateLayout)] = d
	}
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		key := d.Format(dateLayout)
		row := byDay[key]
		resp.Days = append(resp.Days, &quartersv1.DailyUsage{Date: key, Requests: row.Requests, RateLimited: row.RateLimited})
		resp.TotalRequests += row.Requests
		resp.TotalRateLimited += row.RateLimited
	}
	for _, p := range procs {
		resp.Procedures = append(resp.Procedures, &quartersv1.ProcedureUsage{Procedure: p.Procedure, Requests: p.Requests, RateLimited: p.RateLimited})
	}
	return connect.NewResponse(resp), nil
}

// GetCost reports the tenant's database cost over an inclusive UTC date
// range.
func (s *Service) GetCost(ctx context.Context, req *connect.Request[quartersv1.GetCostRequest]) (*connect.Response[quartersv1.GetCostResponse], error) {
	first, last, err := protoconv.DateRange(req.Msg.GetStartDate(), req.Msg.GetEndDate())
	if err != nil {
		return nil, err
	}
	t := tenancy.MustFromContext(ctx)
	if err := s.cost.FlushTenant(ctx, t.ID); err != nil {
		return nil, err
	}
	var rows []dbsqlc.CostByDayRow
	err = s.db.InTenant(ctx, func(q *dbsqlc.Queries) error {
		rows, err = q.CostByDay(ctx, dbsqlc.CostByDayParams{TenantID: t.ID, FirstDay: first, LastDay: last})
		return err
	})
	if err != nil {
		return nil, err
	}
	days, total := protoconv.CostDays(first, last, rows)
	return connect.NewResponse(&quartersv1.GetCostResponse{Days: days, Total: total}), nil
}
