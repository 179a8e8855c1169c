// Package member implements quarters.v1.MemberService: the people of a
// tenant, their roles, and the invitations that bring them in.
//
// Every change to a membership (a new member, a role change, a removal)
// takes the tenant's membership lock (MembershipLock) first, so the rules
// that span rows (max_members, "a tenant keeps an owner") are checked and
// applied without races, and is followed after commit by an invalidation
// of the tenant's cached record: access tokens are checked against that
// record, so this is how a revocation reaches every replica.
package member

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/jobs"
	"github.com/quarters-dev/quarters/internal/notify"
	"github.com/quarters-dev/quarters/internal/page"
	"github.com/quarters-dev/quarters/internal/password"
	"github.com/quarters-dev/quarters/internal/protoconv"
	"github.com/quarters-dev/quarters/internal/quota"
	"github.com/quarters-dev/quarters/internal/session"
	"github.com/quarters-dev/quarters/internal/tenancy"
	"github.com/quarters-dev/quarters/internal/tenant"
	"github.com/quarters-dev/quarters/internal/webhook"
)

// InvitationTTL is how long an invitation can be accepted.
const InvitationTTL = 7 * 24 * time.Hour

// Params are New's inputs.
type Params struct {
	DB       *db.DB
	Sessions *session.Manager
	// Jobs enqueues invitation mails in the inviting transaction, and the
	// webhook deliveries of the member.* and api_key.revoked events.
	Jobs *jobs.Client
	// Tenants is the tenant cache: AcceptInvitation reads the tenant's
	// record from it, and every membership change invalidates it.
	Tenants *tenant.Cache
	// Password is the cost of new password hashes.
	Password password.Params
	// Logger receives failures that happen after a commit; nil is
	// slog.Default().
	Logger *slog.Logger
}

// Service implements quartersv1connect.MemberServiceHandler.
type Service struct {
	p Params
}

var _ quartersv1connect.MemberServiceHandler = (*Service)(nil)

// New returns the service.
func New(p Params) *Service {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	return &Service{p: p}
}

// InviteMember creates an invitation for email with a role and enqueues
// its mail, in one transaction; the token is minted by the mail worker and
// exists only in the mail (see package notify), so no inviter, admin or
// API key ever holds it. Only owners invite owners (PERMISSION_DENIED). An
// email that is already a member's is ALREADY_EXISTS.
//
// The invitee's user is not looked up or created here but at acceptance:
// an invitation nobody accepts leaves no user behind, and the answer (and
// the work done) is the same whether or not the email has an account
// elsewhere.
//
// Pending invitations take a seat of max_members (RESOURCE_EXHAUSTED with
// a QuotaFailure when none is left), except that inviting an email that
// already has a pending invitation takes no second seat: it issues a second
// token, and either works.
func (s *Service) InviteMember(ctx context.Context, req *connect.Request[quartersv1.InviteMemberRequest]) (*connect.Response[quartersv1.InviteMemberResponse], error) {
	caller, _ := auth.FromContext(ctx)
	role := req.Msg.GetRole()
	if role == quartersv1.Role_ROLE_OWNER && caller.Role < tenancy.RoleOwner {
		return nil, connect.NewError(connect.CodePermissionDenied, errors.New("only owners can invite owners"))
	}
	t := tenancy.MustFromContext(ctx)
	email := req.Msg.GetEmail()
	params := dbsqlc.InvitationInsertParams{
		TenantID:   t.ID,
		Email:      email,
		Role:       protoconv.RoleName(role),
		ExpireTime: time.Now().Add(InvitationTTL),
	}
	if caller.IsUser() {
		params.InvitedBy = &caller.UserID
	}
	// A placeholder: token_hash is unique and required, and the mail
	// worker replaces it with its token's. Nobody ever sees this secret,
	// so the invitation cannot be accepted before its mail is sent.
	_, placeholder, _ := auth.InvitationToken.New()
	params.TokenHash = placeholder[:]
	var inv dbsqlc.Invitation
	err := s.p.DB.InTenantTx(ctx, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		var err error
		inv, err = invite(ctx, q, t, params)
		if err != nil {
			return err
		}
		if err := s.p.Jobs.InsertTx(ctx, tx, notify.Invitation(t.ID, inv.ID)); err != nil {
			return err
		}
		// The invitation as the API shows it: never its token.
		return webhook.Emit(ctx, q, tx, s.p.Jobs, t, webhook.MemberInvited, invitationToProto(inv))
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.InviteMemberResponse{Invitation: invitationToProto(inv)}), nil
}

// invite checks the seat and inserts the invitation, in q's transaction.
func invite(ctx context.Context, q *dbsqlc.Queries, t tenancy.Tenant, params dbsqlc.InvitationInsertParams) (dbsqlc.Invitation, error) {
	email := params.Email
	if err := q.MembershipLock(ctx, t.ID.String()); err != nil {
		return dbsqlc.Invitation{}, fmt.Errorf("lock memberships: %w", err)
	}
	st, err := q.MembershipEmailState(ctx, dbsqlc.MembershipEmailStateParams{TenantID: t.ID, Email: email})
	if err != nil {
		return dbsqlc.Invitation{}, fmt.Errorf("check invitee: %w", err)
	}
	if st.IsMember {
		return dbsqlc.Invitation{}, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("%s is already a member; change their role with UpdateMemberRole", email))
	}
	if !st.IsPending {
		seats, err := q.MembershipCountSeats(ctx, t.ID)
		if err != nil {
			return dbsqlc.Invitation{}, fmt.Errorf("count seats: %w", err)
		}
		if int64(seats) >= t.Limits.MaxMembers {
			return dbsqlc.Invitation{}, errNoSeat(t)
		}
	}
	inv, err := q.InvitationInsert(ctx, params)
	if err != nil {
		return dbsqlc.Invitation{}, fmt.Errorf("insert invitation: %w", err)
	}
	return inv, nil
}

// ListMembers lists the tenant's members, newest first.
func (s *Service) ListMembers(ctx context.Context, req *connect.Request[quartersv1.ListMembersRequest]) (*connect.Response[quartersv1.ListMembersResponse], error) {
	rows, next, err := page.Load(req.Msg, "", func(c page.Cursor, limit int32) ([]dbsqlc.MemberListRow, error) {
		return db.InTenantV(ctx, s.p.DB, func(q *dbsqlc.Queries) ([]dbsqlc.MemberListRow, error) {
			return q.MemberList(ctx, dbsqlc.MemberListParams{
				TenantID: tenancy.MustFromContext(ctx).ID, BeforeTime: c.Time, BeforeID: c.ID, PageLimit: limit,
			})
		})
	}, func(r dbsqlc.MemberListRow) page.Cursor { return page.Cursor{Time: r.CreateTime, ID: r.UserID} })
	if err != nil {
		return nil, err
	}
	resp := &quartersv1.ListMembersResponse{NextPageToken: next, Members: make([]*quartersv1.Member, len(rows))}
	for i, r := range rows {
		resp.Members[i] = listRowToProto(r)
	}
	return connect.NewResponse(resp), nil
}

// UpdateMemberRole changes a member's role and moves their token version
// on, so their access tokens stop working at once (refresh tokens keep
// working and yield tokens with the new role). Setting the role a member
// already has changes nothing and ends no session.
//
// Only owners grant or take away the owner role, nobody raises their own
// role (PERMISSION_DENIED), and the last owner cannot be demoted
// (FAILED_PRECONDITION). An unknown user, or another tenant's, is
// NOT_FOUND.
func (s *Service) UpdateMemberRole(ctx context.Context, req *connect.Request[quartersv1.UpdateMemberRoleRequest]) (*connect.Response[quartersv1.UpdateMemberRoleResponse], error) {
	caller, _ := auth.FromContext(ctx)
	t := tenancy.MustFromContext(ctx)
	userID := uuid.MustParse(req.Msg.GetUserId())
	next := tenancy.Role(req.Msg.GetRole())
	var (
		changed bool
		m       *quartersv1.Member
	)
	err := webhook.InTx(ctx, s.p.DB, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		target, err := lockMember(ctx, q, t.ID, userID)
		if err != nil {
			return err
		}
		cur := tenancy.ParseRole(target.Role)
		switch {
		case (cur == tenancy.RoleOwner || next == tenancy.RoleOwner) && caller.Role < tenancy.RoleOwner:
			return connect.NewError(connect.CodePermissionDenied, errors.New("only owners can grant or remove the owner role"))
		case caller.IsUser() && caller.UserID == userID && next > cur:
			return connect.NewError(connect.CodePermissionDenied, errors.New("nobody can raise their own role; ask someone with a higher role"))
		case cur == tenancy.RoleOwner && next != cur:
			if err := requireAnotherOwner(ctx, q, t.ID, "demoted"); err != nil {
				return err
			}
		}
		if cur != next {
			changed = true
			if target, err = q.MembershipSetRole(ctx, dbsqlc.MembershipSetRoleParams{TenantID: t.ID, UserID: userID, Role: next.String()}); err != nil {
				return fmt.Errorf("set role: %w", err)
			}
		}
		u, err := q.UserGet(ctx, userID)
		if err != nil {
			return fmt.Errorf("get member user: %w", err)
		}
		m = memberToProto(target, u)
		if !changed {
			return nil // the role it had: no event
		}
		return webhook.Emit(ctx, q, tx, s.p.Jobs, t, webhook.MemberRoleUpdated, m)
	})
	if err != nil {
		return nil, err
	}
	if changed {
		if err := s.invalidate(ctx, t.ID); err != nil {
			return nil, err
		}
	}
	return connect.NewResponse(&quartersv1.UpdateMemberRoleResponse{Member: m}), nil
}

// RemoveMember removes a member: their refresh tokens go with the
// membership (the foreign key cascades) and their access tokens stop
// working at once. Invitations of their email still pending (a second
// invitation sent before they joined) are revoked too, so none of them
// lets the person back in, and so are the API keys they created (and the
// keys those keys created: see ApiKeyInsert), which the invalidation drops
// from every replica's key cache. Only owners
// remove owners (PERMISSION_DENIED), and the last owner cannot be removed
// (FAILED_PRECONDITION). Admins may remove themselves. The user itself
// stays: users are global. An unknown user, or another tenant's, is
// NOT_FOUND.
func (s *Service) RemoveMember(ctx context.Context, req *connect.Request[quartersv1.RemoveMemberRequest]) (*connect.Response[quartersv1.RemoveMemberResponse], error) {
	caller, _ := auth.FromContext(ctx)
	t := tenancy.MustFromContext(ctx)
	userID := uuid.MustParse(req.Msg.GetUserId())
	err := webhook.InTx(ctx, s.p.DB, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		target, err := lockMember(ctx, q, t.ID, userID)
		if err != nil {
			return err
		}
		if tenancy.ParseRole(target.Role) == tenancy.RoleOwner {
			if caller.Role < tenancy.RoleOwner {
				return connect.NewError(connect.CodePermissionDenied, errors.New("only owners can remove an owner"))
			}
			if err := requireAnotherOwner(ctx, q, t.ID, "removed"); err != nil {
				return err
			}
		}
		var removed *quartersv1.Member
		if t.Has(webhook.Feature) {
			// The event's member, read while the user is still visible
			// through the membership.
			u, err := q.UserGet(ctx, userID)
			if err != nil {
				return fmt.Errorf("get member user: %w", err)
			}
			removed = memberToProto(target, u)
		}
		invs, err := q.InvitationCloseForMember(ctx, dbsqlc.InvitationCloseForMemberParams{TenantID: t.ID, UserID: userID})
		if err != nil {
			return fmt.Errorf("revoke member's invitations: %w", err)
		}
		keys, err := q.ApiKeyRevokeByCreator(ctx, dbsqlc.ApiKeyRevokeByCreatorParams{TenantID: t.ID, CreatedBy: &userID})
		if err != nil {
			return fmt.Errorf("revoke member's api keys: %w", err)
		}
		if _, err := q.MembershipDelete(ctx, dbsqlc.MembershipDeleteParams{TenantID: t.ID, UserID: userID}); err != nil {
			return fmt.Errorf("delete membership: %w", err)
		}
		if removed == nil {
			return nil // no feature: Emit would write nothing
		}
		for _, inv := range invs {
			if err := webhook.Emit(ctx, q, tx, s.p.Jobs, t, webhook.MemberInvitationRevoked, invitationToProto(inv)); err != nil {
				return err
			}
		}
		for _, k := range keys {
			if err := webhook.Emit(ctx, q, tx, s.p.Jobs, t, webhook.APIKeyRevoked, protoconv.APIKey(k)); err != nil {
				return err
			}
		}
		return webhook.Emit(ctx, q, tx, s.p.Jobs, t, webhook.MemberRemoved, removed)
	})
	if err != nil {
		return nil, err
	}
	if err := s.invalidate(ctx, t.ID); err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.RemoveMemberResponse{}), nil
}

// GetCurrentUser returns the signed-in user, the tenant and role of the
// access token, and every tenant the user belongs to. The access rule
// admits only access tokens, so the principal names a user.
func (s *Service) GetCurrentUser(ctx context.Context, _ *connect.Request[quartersv1.GetCurrentUserRequest]) (*connect.Response[quartersv1.GetCurrentUserResponse], error) {
	p, _ := auth.FromContext(ctx)
	u, err := db.InTenantV(ctx, s.p.DB, func(q *dbsqlc.Queries) (dbsqlc.User, error) {
		return q.UserGet(ctx, p.UserID)
	})
	if err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	tenants, err := s.p.DB.UserTenants(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	resp := &quartersv1.GetCurrentUserResponse{
		User:     session.UserToProto(u),
		TenantId: p.TenantID.String(),
		Role:     protoconv.Role(p.Role),
		Tenants:  make([]*quartersv1.TenantMembership, len(tenants)),
	}
	for i, ut := range tenants {
		resp.Tenants[i] = &quartersv1.TenantMembership{
			TenantId: ut.TenantID.String(), TenantSlug: ut.Slug, TenantName: ut.Name, Role: protoconv.RoleOf(ut.Role),
		}
	}
	return connect.NewResponse(resp), nil
}

// lockMember takes the tenant's membership lock, then returns the member
// userID, locked for update. The membership lock comes first in every
// change, so changes never wait on each other in different orders. An
// unknown user, or another tenant's (invisible under RLS), is NOT_FOUND
// with one message.
func lockMember(ctx context.Context, q *dbsqlc.Queries, tenantID, userID uuid.UUID) (dbsqlc.Membership, error) {
	if err := q.MembershipLock(ctx, tenantID.String()); err != nil {
		return dbsqlc.Membership{}, fmt.Errorf("lock memberships: %w", err)
	}
	m, err := q.MembershipGetForUpdate(ctx, dbsqlc.MembershipGetForUpdateParams{TenantID: tenantID, UserID: userID})
	if errors.Is(err, db.ErrNotFound) {
		return m, connect.NewError(connect.CodeNotFound, errors.New("member not found"))
	}
	if err != nil {
		return m, fmt.Errorf("get membership: %w", err)
	}
	return m, nil
}

// requireAnotherOwner refuses (FAILED_PRECONDITION) to demote or remove
// the tenant's only owner. The caller holds the membership lock, so two
// owners cannot demote each other at once.
func requireAnotherOwner(ctx context.Context, q *dbsqlc.Queries, tenantID uuid.UUID, what string) error {
	n, err := q.MembershipCountOwners(ctx, tenantID)
	if err != nil {
		return fmt.Errorf("count owners: %w", err)
	}
	if n <= 1 {
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
			"the tenant's last owner cannot be %s: make another member owner first", what))
	}
	return nil
}

// errNoSeat is max_members exhausted.
func errNoSeat(t tenancy.Tenant) error {
	return quota.Exceeded(t, "max_members", t.Limits.MaxMembers, "members",
		"pending invitations count until accepted, revoked or expired; revoke an invitation, remove a member or upgrade the plan")
}

// invalidate announces a committed membership change to every replica, so
// the member's access tokens are checked against the new state.
func (s *Service) invalidate(ctx context.Context, id uuid.UUID) error {
	return s.p.Tenants.Committed(ctx, id, "the member's previous access")
}

// memberToProto shows a tenant its member: of the account, only the id
// and email (see Member.user in the contract).
func memberToProto(m dbsqlc.Membership, u dbsqlc.User) *quartersv1.Member {
	return &quartersv1.Member{
		User:       &quartersv1.User{Id: u.ID.String(), Email: u.Email},
		Role:       protoconv.RoleOf(m.Role),
		CreateTime: timestamppb.New(m.CreateTime),
		UpdateTime: timestamppb.New(m.UpdateTime),
	}
}

func listRowToProto(r dbsqlc.MemberListRow) *quartersv1.Member {
	return &quartersv1.Member{
		User:       &quartersv1.User{Id: r.UserID.String(), Email: r.Email},
		Role:       protoconv.RoleOf(r.Role),
		CreateTime: timestamppb.New(r.CreateTime),
		UpdateTime: timestamppb.New(r.UpdateTime),
	}
}

func invitationToProto(i dbsqlc.Invitation) *quartersv1.Invitation {
	p := &quartersv1.Invitation{
		Id:         i.ID.String(),
		Email:      i.Email,
		Role:       protoconv.RoleOf(i.Role),
		CreateTime: timestamppb.New(i.CreateTime),
		ExpireTime: timestamppb.New(i.ExpireTime),
	}
	if i.RevokeTime != nil {
		p.RevokeTime = timestamppb.New(*i.RevokeTime)
	}
	if i.InvitedBy != nil {
		p.InvitedBy = i.InvitedBy.String()
	}
	return p
}
