// Package protoconv converts database rows and domain types to the
// contract's messages, for the services that share them (TenantService
// and PlatformService both return Tenant; AuthService and PlatformService
// API keys). A service's own messages are converted in the service.
package protoconv

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apierr"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// Role converts a role for the API: tenancy's numbers are the contract's.
func Role(r tenancy.Role) quartersv1.Role { return quartersv1.Role(r) }

// RoleName is the lowercase name ("admin") of a role from the API.
func RoleName(r quartersv1.Role) string { return tenancy.Role(r).String() }

// RoleOf is the role stored under name ("admin") for the API.
func RoleOf(name string) quartersv1.Role { return Role(tenancy.ParseRole(name)) }

// APIKey converts an api_keys row for the API. The secret's hash never
// leaves the server.
func APIKey(k dbsqlc.ApiKey) *quartersv1.ApiKey {
	p := &quartersv1.ApiKey{
		Id:           k.ID.String(),
		Name:         k.Name,
		Role:         RoleOf(k.Role),
		Prefix:       k.Prefix,
		CreateTime:   timestamppb.New(k.CreateTime),
		ExpireTime:   OptionalTime(k.ExpireTime),
		RevokeTime:   OptionalTime(k.RevokeTime),
		LastUsedTime: OptionalTime(k.LastUsedTime),
	}
	if k.CreatedBy != nil {
		p.CreatedBy = k.CreatedBy.String()
	}
	return p
}

// OptionalTime converts a nullable timestamp: nil stays unset.
func OptionalTime(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

// Tenant converts a tenants row for the API.
func Tenant(t dbsqlc.Tenant) *quartersv1.Tenant {
	status := quartersv1.TenantStatus_TENANT_STATUS_ACTIVE
	if t.Status == "suspended" {
		status = quartersv1.TenantStatus_TENANT_STATUS_SUSPENDED
	}
	return &quartersv1.Tenant{
		Id:         t.ID.String(),
		Slug:       t.Slug,
		Name:       t.Name,
		Plan:       t.Plan,
		Status:     status,
		OwnerEmail: t.OwnerEmail,
		CreateTime: timestamppb.New(t.CreateTime),
		PurgeTime:  timestampOrNil(t.PurgeTime),
	}
}

func timestampOrNil(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

// Limits converts effective limits for the API.
func Limits(l tenancy.Limits) *quartersv1.Limits {
	return &quartersv1.Limits{
		RequestsPerMinute:   l.RequestsPerMinute,
		Burst:               l.Burst,
		MaxProjects:         l.MaxProjects,
		MaxMembers:          l.MaxMembers,
		MaxApiCallsPerMonth: l.MaxAPICallsPerMonth,
		StatementTimeoutMs:  l.StatementTimeout.Milliseconds(),
	}
}

// DateLayout is the contract's date format ("YYYY-MM-DD", UTC).
const DateLayout = "2006-01-02"

// MaxRangeDays is the longest date range a report covers, both ends
// included.
const MaxRangeDays = 92

// DateRange parses a request's inclusive date range of real calendar
// dates (the pattern passed validation; 2026-02-30 did too), with last on
// or after first and at most MaxRangeDays days in all. Its errors are
// INVALID_ARGUMENT with a BadRequest detail naming the field.
func DateRange(start, end string) (first, last time.Time, err error) {
	if first, err = time.Parse(DateLayout, start); err != nil {
		return first, last, apierr.InvalidField("start_date", "start_date must be a real calendar date (YYYY-MM-DD)")
	}
	if last, err = time.Parse(DateLayout, end); err != nil {
		return first, last, apierr.InvalidField("end_date", "end_date must be a real calendar date (YYYY-MM-DD)")
	}
	if last.Before(first) {
		return first, last, apierr.InvalidField("end_date", "end_date must be on or after start_date")
	}
	if last.After(first.AddDate(0, 0, MaxRangeDays-1)) {
		return first, last, apierr.InvalidField("end_date", fmt.Sprintf("a range is at most %d days: end_date at most %d days after start_date", MaxRangeDays, MaxRangeDays-1))
	}
	return first, last, nil
}

// CostDays turns a tenant's stored days into one entry per day from
// first to last, zeros included, and their total: AnalyticsService's
// GetCost and PlatformService's GetTenantCost answer in this shape.
func CostDays(first, last time.Time, rows []dbsqlc.CostByDayRow) ([]*quartersv1.DailyCost, *quartersv1.Cost) {
	byDay := make(map[string]dbsqlc.CostByDayRow, len(rows))
	for _, r := range rows {
		byDay[r.Day.Format(DateLayout)] = r
	}
	total := &quartersv1.Cost{}
	var days []*quartersv1.DailyCost
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		key := d.Format(DateLayout)
		r := byDay[key]
		days = append(days, &quartersv1.DailyCost{Date: key, Cost: &quartersv1.Cost{Calls: r.Calls, DbTimeMicros: r.DbTimeUs, Rows: r.Rows}})
		total.Calls += r.Calls
		total.DbTimeMicros += r.DbTimeUs
		total.Rows += r.Rows
	}
	return days, total
}
