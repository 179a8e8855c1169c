package member

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/page"
	"github.com/quarters-dev/quarters/internal/tenancy"
	"github.com/quarters-dev/quarters/internal/webhook"
)

// ListInvitations lists the tenant's pending invitations (neither
// accepted, revoked nor expired), newest first. An invitation that expires
// between two pages simply drops out of the next one.
func (s *Service) ListInvitations(ctx context.Context, req *connect.Request[quartersv1.ListInvitationsRequest]) (*connect.Response[quartersv1.ListInvitationsResponse], error) {
	rows, next, err := page.Load(req.Msg, "", func(c page.Cursor, limit int32) ([]dbsqlc.Invitation, error) {
		return db.InTenantV(ctx, s.p.DB, func(q *dbsqlc.Queries) ([]dbsqlc.Invitation, error) {
			return q.InvitationList(ctx, dbsqlc.InvitationListParams{
				TenantID: tenancy.MustFromContext(ctx).ID, BeforeTime: c.Time, BeforeID: c.ID, PageLimit: limit,
			})
		})
	}, func(i dbsqlc.Invitation) page.Cursor { return page.Cursor{Time: i.CreateTime, ID: i.ID} })
	if err != nil {
		return nil, err
	}
	resp := &quartersv1.ListInvitationsResponse{NextPageToken: next, Invitations: make([]*quartersv1.Invitation, len(rows))}
	for i, r := range rows {
		resp.Invitations[i] = invitationToProto(r)
	}
	return connect.NewResponse(resp), nil
}

// RevokeInvitation revokes a pending invitation: its token then fails as a
// used one does, and its max_members seat is free at once. Only owners
// revoke an owner invitation, as only owners make one (PERMISSION_DENIED).
// An invitation already accepted, revoked or expired is
// FAILED_PRECONDITION: it can no longer be used anyway. An unknown
// invitation, or another tenant's (invisible under RLS), is NOT_FOUND with
// one message.
//
// The invitation's row is locked first, so an acceptance running at the
// same time either completes before (and the revocation is refused) or
// finds the invitation revoked.
func (s *Service) RevokeInvitation(ctx context.Context, req *connect.Request[quartersv1.RevokeInvitationRequest]) (*connect.Response[quartersv1.RevokeInvitationResponse], error) {
	caller, _ := auth.FromContext(ctx)
	t := tenancy.MustFromContext(ctx)
	params := dbsqlc.InvitationRevokeParams{TenantID: t.ID, ID: uuid.MustParse(req.Msg.GetId())}
	var out *quartersv1.Invitation
	err := webhook.InTx(ctx, s.p.DB, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		inv, err := q.InvitationGetForUpdate(ctx, dbsqlc.InvitationGetForUpdateParams(params))
		if errors.Is(err, db.ErrNotFound) {
			return connect.NewError(connect.CodeNotFound, errors.New("invitation not found"))
		}
		if err != nil {
			return fmt.Errorf("get invitation: %w", err)
		}
		if tenancy.ParseRole(inv.Role) == tenancy.RoleOwner && caller.Role < tenancy.RoleOwner {
			return connect.NewError(connect.CodePermissionDenied, errors.New("only owners can revoke an owner invitation"))
		}
		if err := requirePending(inv); err != nil {
			return err
		}
		if inv, err = q.InvitationRevoke(ctx, params); err != nil {
			return fmt.Errorf("revoke invitation: %w", err)
		}
		out = invitationToProto(inv)
		return webhook.Emit(ctx, q, tx, s.p.Jobs, t, webhook.MemberInvitationRevoked, out)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.RevokeInvitationResponse{Invitation: out}), nil
}

// requirePending is FAILED_PRECONDITION, saying why, for an invitation
// that can no longer be accepted.
func requirePending(inv dbsqlc.Invitation) error {
	var why string
	switch {
	case inv.AcceptTime != nil:
		why = "invitation was already accepted; remove the member with RemoveMember instead"
	case inv.RevokeTime != nil:
		why = "invitation was already revoked"
	case !inv.ExpireTime.After(time.Now()):
		why = "invitation has already expired"
	default:
		return nil
	}
	return connect.NewError(connect.CodeFailedPrecondition, errors.New(why))
}
