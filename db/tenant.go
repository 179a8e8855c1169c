package db

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/quarters-dev/quarters/gen/dbsqlc"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// LoadTenant reads a tenant's record with its effective limits and
// features, acting as that tenant (row-level security applies). It is the
// tenant cache's loader; it returns ErrNotFound for an unknown tenant.
func (d *DB) LoadTenant(ctx context.Context, id uuid.UUID) (tenancy.Tenant, error) {
	var (
		row     dbsqlc.TenantRecordGetRow
		members []dbsqlc.MembershipVersionsRow
	)
	err := d.inTenant(ctx, id, func(q *dbsqlc.Queries) error {
		var err error
		if row, err = q.TenantRecordGet(ctx, id); err != nil {
			return err
		}
		members, err = q.MembershipVersions(ctx, id)
		return err
	})
	if err != nil {
		return tenancy.Tenant{}, err
	}
	features := make(map[string]bool, len(row.PlanFeatures))
	for _, f := range row.PlanFeatures {
		features[f] = true
	}
	var overrides map[string]bool
	if err := json.Unmarshal(row.FeatureOverrides, &overrides); err != nil {
		return tenancy.Tenant{}, fmt.Errorf("tenant %s feature overrides: %w", id, err)
	}
	for f, on := range overrides {
		if on {
			features[f] = true
		} else {
			delete(features, f)
		}
	}
	return tenancy.Tenant{
		ID:       row.ID,
		Slug:     row.Slug,
		Active:   row.Status == "active" && row.PurgeTime == nil,
		Deleting: row.Status == "active" && row.PurgeTime != nil,
		Plan:     row.Plan,
		Limits: tenancy.Limits{
			RequestsPerMinute:   int64(row.RequestsPerMinute),
			Burst:               int64(row.Burst),
			MaxProjects:         int64(row.MaxProjects),
			MaxMembers:          int64(row.MaxMembers),
			MaxAPICallsPerMonth: row.MaxApiCallsPerMonth,
			StatementTimeout:    time.Duration(row.StatementTimeoutMs) * time.Millisecond,
		},
		Features:  features,
		Members:   memberMap(members),
		PurgeTime: purgeTime(row.PurgeTime),
	}, nil
}

func purgeTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func memberMap(rows []dbsqlc.MembershipVersionsRow) map[uuid.UUID]tenancy.Member {
	m := make(map[uuid.UUID]tenancy.Member, len(rows))
	for _, r := range rows {
		m[r.UserID] = tenancy.Member{Role: r.Role, Version: r.Version, Email: strings.ToLower(r.Email)}
	}
	return m
}
