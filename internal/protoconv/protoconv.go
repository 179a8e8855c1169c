// Package protoconv converts database rows and domain types to the
// contract's messages, for the services that share them (TenantService
// and PlatformService both return Tenant; AuthService and PlatformService
// API keys). A service's own messages are converted in the service.
package protoconv

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
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
