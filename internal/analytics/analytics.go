// Package analytics implements quarters.v1.AnalyticsService: a tenant's
// own API usage by day and by procedure.
package analytics

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/metering"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

const dateLayout = "2006-01-02"

// Service implements quartersv1connect.AnalyticsServiceHandler.
type Service struct {
	db    *db.DB
	usage *metering.Usage
}

var _ quartersv1connect.AnalyticsServiceHandler = (*Service)(nil)

// New returns the service; u's unflushed counts are written before each
// report so it includes the calls this replica just served.
func New(d *db.DB, u *metering.Usage) *Service { return &Service{db: d, usage: u} }

// GetUsage reports usage over an inclusive UTC date range.
func (s *Service) GetUsage(ctx context.Context, req *connect.Request[quartersv1.GetUsageRequest]) (*connect.Response[quartersv1.GetUsageResponse], error) {
	first, err1 := time.Parse(dateLayout, req.Msg.GetStartDate())
	last, err2 := time.Parse(dateLayout, req.Msg.GetEndDate())
	if err1 != nil || err2 != nil {
		// The pattern passed validation, so this is a date like 2026-02-30.
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("start_date and end_date must be real calendar dates (YYYY-MM-DD)"))
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
	err := s.db.InTenant(ctx, func(q *dbsqlc.Queries) error {
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
