package platform

import (
	"context"
	"encoding/hex"
	"errors"
	"sort"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/deletion"
)

// DeleteTenant schedules the tenant's deletion (deletion.Schedule) with
// an audit record, in one transaction acting for it; a deletion already
// pending is left as it is, and audited with equal before and after.
func (s *Service) DeleteTenant(ctx context.Context, req *connect.Request[quartersv1.PlatformServiceDeleteTenantRequest]) (*connect.Response[quartersv1.PlatformServiceDeleteTenantResponse], error) {
	d, ev, err := s.deletionChange(ctx, uuid.MustParse(req.Msg.GetTenantId()), "DeleteTenant",
		func(ctx context.Context, q *dbsqlc.Queries, tx pgx.Tx, id uuid.UUID) (dbsqlc.Tenant, error) {
			t, _, err := deletion.Schedule(ctx, q, tx, s.jobs, id, deletion.ActorPlatform, s.DeletionGrace)
			return t, err
		})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.PlatformServiceDeleteTenantResponse{Details: d, AuditEvent: ev}), nil
}

// CancelTenantDeletion cancels the tenant's pending deletion and its
// purge job; FAILED_PRECONDITION if none is pending.
func (s *Service) CancelTenantDeletion(ctx context.Context, req *connect.Request[quartersv1.PlatformServiceCancelTenantDeletionRequest]) (*connect.Response[quartersv1.PlatformServiceCancelTenantDeletionResponse], error) {
	d, ev, err := s.deletionChange(ctx, uuid.MustParse(req.Msg.GetTenantId()), "CancelTenantDeletion",
		func(ctx context.Context, q *dbsqlc.Queries, tx pgx.Tx, id uuid.UUID) (dbsqlc.Tenant, error) {
			return deletion.Cancel(ctx, q, tx, s.jobs, id)
		})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.PlatformServiceCancelTenantDeletionResponse{Details: d, AuditEvent: ev}), nil
}

// deletionChange runs apply on the locked tenant with an audit record of
// its purge_time before and after, in one transaction acting for it, then
// invalidates its cached record everywhere. NOT_FOUND for an unknown
// tenant.
func (s *Service) deletionChange(ctx context.Context, id uuid.UUID, action string,
	apply func(ctx context.Context, q *dbsqlc.Queries, tx pgx.Tx, id uuid.UUID) (dbsqlc.Tenant, error),
) (*quartersv1.TenantDetails, *quartersv1.AuditEvent, error) {
	var (
		st state
		ev dbsqlc.AuditEvent
	)
	err := s.db.ActAsTx(ctx, id, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		before, err := readState(ctx, q, id, q.TenantGetForUpdate)
		if err != nil {
			return err
		}
		t, err := apply(ctx, q, tx, id)
		if err != nil {
			return err
		}
		st = before
		st.tenant = t
		ev, err = deletion.Audit(ctx, q, id, Actor, action, before.tenant.PurgeTime, t.PurgeTime)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if err := s.cache.Committed(ctx, id, "the tenant's previous deletion state"); err != nil {
		return nil, nil, err
	}
	d, err := s.details(ctx, st)
	if err != nil {
		return nil, nil, err
	}
	e, err := auditEventToProto(ev)
	if err != nil {
		return nil, nil, err
	}
	return d, e, nil
}

// GetDeletionCertificate returns a purged tenant's certificate; NOT_FOUND
// if there is none.
func (s *Service) GetDeletionCertificate(ctx context.Context, req *connect.Request[quartersv1.GetDeletionCertificateRequest]) (*connect.Response[quartersv1.GetDeletionCertificateResponse], error) {
	c, err := s.db.PlatformDeletionCertificate(ctx, uuid.MustParse(req.Msg.GetTenantId()))
	if errors.Is(err, db.ErrNotFound) {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no deletion certificate: the tenant was not purged"))
	}
	if err != nil {
		return nil, err
	}
	out := &quartersv1.DeletionCertificate{
		TenantId:      c.TenantID.String(),
		Slug:          c.Slug,
		RequestedBy:   c.RequestedBy,
		RequestTime:   timestamppb.New(c.RequestTime),
		ScheduledTime: timestamppb.New(c.ScheduledTime),
		PurgeTime:     timestamppb.New(c.PurgeTime),
	}
	if c.ExportSHA256 != nil {
		out.ExportSha256 = hex.EncodeToString(c.ExportSHA256)
	}
	for name, n := range c.Tables {
		out.Tables = append(out.Tables, &quartersv1.DeletionCertificateTable{Name: name, RowsBefore: n.Before, RowsAfter: n.After})
	}
	sort.Slice(out.Tables, func(i, j int) bool { return out.Tables[i].Name < out.Tables[j].Name })
	return connect.NewResponse(&quartersv1.GetDeletionCertificateResponse{Certificate: out}), nil
}
