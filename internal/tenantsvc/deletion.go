package tenantsvc

import (
	"context"
	"fmt"
	"time"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apierr"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/deletion"
	"github.com/quarters-dev/quarters/internal/protoconv"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// DeleteTenant schedules the caller's tenant's deletion, once its slug is
// typed back, with an audit record, then drops the tenant's cached record
// on every replica, so every other call of its credentials is refused
// from the next one on.
func (s *Service) DeleteTenant(ctx context.Context, req *connect.Request[quartersv1.DeleteTenantRequest]) (*connect.Response[quartersv1.DeleteTenantResponse], error) {
	t := tenancy.MustFromContext(ctx)
	if !deletion.ConfirmMatches(req.Msg.GetConfirmSlug(), t.Slug) {
		return nil, confirmViolation(t.Slug)
	}
	p, _ := auth.FromContext(ctx)
	var out dbsqlc.Tenant
	err := s.p.DB.InTenantTx(ctx, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		var err error
		out, _, err = deletion.Schedule(ctx, q, tx, s.p.Jobs, t.ID, deletion.ActorOwner(p.UserID), s.p.DeletionGrace)
		if err != nil {
			return err
		}
		_, err = deletion.Audit(ctx, q, t.ID, deletion.ActorOwner(p.UserID), "DeleteTenant", nil, out.PurgeTime)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := s.p.Tenants.Committed(ctx, t.ID, "the tenant as active"); err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.DeleteTenantResponse{Tenant: protoconv.Tenant(out)}), nil
}

// CancelTenantDeletion cancels the pending deletion and its purge job,
// with an audit record; the tenant is as it was on every replica's next
// call.
func (s *Service) CancelTenantDeletion(ctx context.Context, _ *connect.Request[quartersv1.CancelTenantDeletionRequest]) (*connect.Response[quartersv1.CancelTenantDeletionResponse], error) {
	t := tenancy.MustFromContext(ctx)
	p, _ := auth.FromContext(ctx)
	var out dbsqlc.Tenant
	err := s.p.DB.InTenantTx(ctx, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		var err error
		if out, err = deletion.Cancel(ctx, q, tx, s.p.Jobs, t.ID); err != nil {
			return err
		}
		var before *time.Time
		if !t.PurgeTime.IsZero() {
			before = &t.PurgeTime
		}
		_, err = deletion.Audit(ctx, q, t.ID, deletion.ActorOwner(p.UserID), "CancelTenantDeletion", before, nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := s.p.Tenants.Committed(ctx, t.ID, "the tenant as awaiting deletion"); err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.CancelTenantDeletionResponse{Tenant: protoconv.Tenant(out)}), nil
}

// confirmField describes DeleteTenantRequest.confirm_slug for violations.
var confirmField = (&quartersv1.DeleteTenantRequest{}).ProtoReflect().Descriptor().Fields().ByName("confirm_slug")

// confirmViolation is INVALID_ARGUMENT with the violation of
// confirm_slug, in the shape protovalidate's own take (as the SDKs'
// Violations helpers read them).
func confirmViolation(slug string) error {
	msg := fmt.Sprintf("must be the tenant's slug, %q, typed back to confirm its deletion", slug)
	v := validate.Violations_builder{Violations: []*validate.Violation{validate.Violation_builder{
		Field: validate.FieldPath_builder{Elements: []*validate.FieldPathElement{validate.FieldPathElement_builder{
			FieldNumber: proto.Int32(int32(confirmField.Number())),
			FieldName:   proto.String(string(confirmField.Name())),
			FieldType:   descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(),
		}.Build()}}.Build(),
		RuleId:  proto.String("confirm_slug.matches"),
		Message: proto.String(msg),
	}.Build()}}.Build()
	return apierr.Violations(fmt.Errorf("confirm_slug: %s", msg), v)
}
