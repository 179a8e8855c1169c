package tenant

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
)

// RowToProto converts a tenants row for the API; TenantService and
// PlatformService both return it.
func RowToProto(t dbsqlc.Tenant) *quartersv1.Tenant {
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
	}
}

// Proto converts effective limits for the API.
func (l Limits) Proto() *quartersv1.Limits {
	return &quartersv1.Limits{
		RequestsPerMinute:   l.RequestsPerMinute,
		Burst:               l.Burst,
		MaxProjects:         l.MaxProjects,
		MaxMembers:          l.MaxMembers,
		MaxApiCallsPerMonth: l.MaxAPICallsPerMonth,
		StatementTimeoutMs:  l.StatementTimeout.Milliseconds(),
	}
}
