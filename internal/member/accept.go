package member

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apierr"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/password"
	"github.com/quarters-dev/quarters/internal/session"
	"github.com/quarters-dev/quarters/internal/tenancy"
	"github.com/quarters-dev/quarters/internal/webhook"
)

// AcceptInvitation redeems an invitation, once, and signs the invitee in
// to the inviting tenant.
//
// A malformed, unknown, expired or already used token is one NOT_FOUND
// ("invitation is invalid, expired or already used"): the caller can act
// on it only by asking for a new invitation, and it stays distinct from a
// wrong password. A suspended tenant's invitation is refused like every
// call of that tenant.
//
// The token was mailed to the invitation's address and to nobody else
// (InviteMember), so holding it proves control of that address. An
// account nobody has proved to own (none yet, no password, or an
// unverified email: perhaps made by someone else with this address) is
// claimed: the password given becomes its password (too short or too
// long is INVALID_ARGUMENT with a violation on password), the email is
// verified, and every earlier session of the account ends, in every
// tenant. A verified account with a password is the invitee's already: the
// password must be that one (UNAUTHENTICATED otherwise). Either refusal
// leaves the invitation usable. The password work (tens of milliseconds)
// happens before the transaction, which holds the tenant's membership
// lock.
//
// The invitee gets a membership with the invitation's role, within
// max_members (members only: the invitation's own seat becomes this
// membership; RESOURCE_EXHAUSTED otherwise). Someone who is a member
// already (a second invitation) keeps their membership unchanged.
func (s *Service) AcceptInvitation(ctx context.Context, req *connect.Request[quartersv1.AcceptInvitationRequest]) (*connect.Response[quartersv1.AcceptInvitationResponse], error) {
	hash, err := auth.InvitationToken.Parse(req.Msg.GetToken())
	if err != nil {
		return nil, errInvalidInvitation()
	}
	tenantID, err := s.p.DB.InvitationTenant(ctx, hash)
	if errors.Is(err, db.ErrNotFound) {
		return nil, errInvalidInvitation()
	}
	if err != nil {
		return nil, err
	}
	// A tenant deleted meanwhile took its invitations with it.
	t, err := s.p.Tenants.GetActive(ctx, tenantID, errInvalidInvitation)
	if err != nil {
		return nil, err
	}
	pw := req.Msg.GetPassword()
	pre, err := s.preparePassword(ctx, tenantID, hash, pw)
	if err != nil {
		return nil, err
	}
	var (
		sess    *quartersv1.Session
		created bool
		ended   []uuid.UUID // tenants whose sessions of the invitee ended
	)
	err = webhook.ActAsTx(ctx, s.p.DB, t, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		inv, err := q.InvitationAccept(ctx, dbsqlc.InvitationAcceptParams{TenantID: tenantID, TokenHash: hash[:]})
		if errors.Is(err, db.ErrNotFound) {
			// Used or expired since preparePassword read it.
			return errInvalidInvitation()
		}
		if err != nil {
			return fmt.Errorf("accept invitation: %w", err)
		}
		user, err := q.UserEnsure(ctx, dbsqlc.UserEnsureParams{Email: inv.Email})
		if err != nil {
			return fmt.Errorf("ensure user: %w", err)
		}
		m, isNew, err := ensureMembership(ctx, q, t, user.ID, inv.Role)
		if err != nil {
			return err
		}
		created = isNew
		// Visible under RLS now that it is a member here.
		u, err := q.UserGet(ctx, user.ID)
		if err != nil {
			return fmt.Errorf("get user: %w", err)
		}
		u, claimed, err := s.settlePassword(ctx, q, u, pw, pre)
		if err != nil {
			return err
		}
		if claimed {
			if ended, err = q.UserSignOutEverywhere(ctx, u.ID); err != nil {
				return fmt.Errorf("end earlier sessions: %w", err)
			}
			// The version moved on; the new session carries the new one.
			if m, err = q.MembershipGet(ctx, dbsqlc.MembershipGetParams{TenantID: tenantID, UserID: u.ID}); err != nil {
				return fmt.Errorf("get membership: %w", err)
			}
		}
		if created {
			// A second invitation of a member changes nothing: no event.
			if err := webhook.Emit(ctx, q, tx, s.p.Jobs, t, webhook.MemberJoined, memberToProto(m, u)); err != nil {
				return err
			}
		}
		sess, err = s.p.Sessions.Start(ctx, q, session.Subject{TenantSlug: t.Slug, User: u, Membership: m})
		return err
	})
	if err != nil {
		return nil, err
	}
	// The session is committed and the invitation used: failing the call
	// now would lose both, so a failed invalidation is only logged (by
	// Committed). Other replicas then refuse the new member's access token,
	// or accept the claimed account's old ones, until their cached record
	// expires (the cache TTL); this one already dropped its copy.
	if created && !slices.Contains(ended, tenantID) {
		ended = append(ended, tenantID)
	}
	for _, id := range ended {
		_ = s.invalidate(ctx, id)
	}
	return connect.NewResponse(&quartersv1.AcceptInvitationResponse{Session: sess}), nil
}

// prepared is the password work AcceptInvitation does before its
// transaction.
type prepared struct {
	// checked is the stored hash the password was found to match, for an
	// account that is the invitee's already (verified, with a password).
	checked *string
	// newHash is the password hashed, for an account being claimed.
	newHash string
}

// owned reports whether u is an account someone has proved to own: a
// verified email and a password. Only such an account's password is
// checked; any other is claimed by whoever holds the mailed token.
func owned(u dbsqlc.User) bool { return u.PasswordHash != nil && u.EmailVerifyTime != nil }

// preparePassword reads the live invitation and its invitee's credentials
// (through the privileged lookup: the invitee may be a user of other
// tenants, invisible here; the caller proves it is the invitee by holding
// the mailed token), then checks pw against the stored hash of an owned
// account, or validates and hashes it as the new password of one being
// claimed.
func (s *Service) preparePassword(ctx context.Context, tenantID uuid.UUID, hash [32]byte, pw string) (prepared, error) {
	var inv dbsqlc.Invitation
	err := s.p.DB.ActAs(ctx, tenantID, func(q *dbsqlc.Queries) error {
		var err error
		inv, err = q.InvitationGetLive(ctx, dbsqlc.InvitationGetLiveParams{TenantID: tenantID, TokenHash: hash[:]})
		return err
	})
	if errors.Is(err, db.ErrNotFound) {
		return prepared{}, errInvalidInvitation()
	}
	if err != nil {
		return prepared{}, fmt.Errorf("get invitation: %w", err)
	}
	creds, err := s.p.DB.UserCredentials(ctx, inv.Email)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return prepared{}, err
	}
	if err == nil && creds.PasswordHash != nil && creds.EmailVerified {
		if err := checkPassword(pw, *creds.PasswordHash); err != nil {
			return prepared{}, err
		}
		return prepared{checked: creds.PasswordHash}, nil
	}
	h, err := s.newPassword(pw)
	return prepared{newHash: h}, err
}

// settlePassword checks the password of an owned account, or claims the
// account with the new password (claimed), inside the transaction, using
// the work preparePassword did. Only if the account changed since (claimed
// or reset by someone else meanwhile) is the work redone here.
func (s *Service) settlePassword(ctx context.Context, q *dbsqlc.Queries, u dbsqlc.User, pw string, pre prepared) (_ dbsqlc.User, claimed bool, _ error) {
	if owned(u) {
		if pre.checked != nil && *pre.checked == *u.PasswordHash {
			return u, false, nil
		}
		return u, false, checkPassword(pw, *u.PasswordHash)
	}
	h := pre.newHash
	if h == "" {
		var err error
		if h, err = s.newPassword(pw); err != nil {
			return u, false, err
		}
	}
	claimedUser, err := q.UserClaim(ctx, dbsqlc.UserClaimParams{ID: u.ID, PasswordHash: &h})
	if errors.Is(err, db.ErrNotFound) {
		// Made owned by a concurrent acceptance or reset between our read
		// and this update.
		return u, false, connect.NewError(connect.CodeAborted, errors.New("the account was set up concurrently; retry the request"))
	}
	if err != nil {
		return u, false, fmt.Errorf("claim account: %w", err)
	}
	return claimedUser, true, nil
}

// ensureMembership returns userID's membership, creating it with role if
// there is none (isNew), within max_members. It takes the membership lock
// first, like every membership change.
func ensureMembership(ctx context.Context, q *dbsqlc.Queries, t tenancy.Tenant, userID uuid.UUID, role string) (m dbsqlc.Membership, isNew bool, err error) {
	if err := q.MembershipLock(ctx, t.ID.String()); err != nil {
		return m, false, fmt.Errorf("lock memberships: %w", err)
	}
	m, err = q.MembershipGet(ctx, dbsqlc.MembershipGetParams{TenantID: t.ID, UserID: userID})
	if err == nil {
		return m, false, nil
	}
	if !errors.Is(err, db.ErrNotFound) {
		return m, false, fmt.Errorf("get membership: %w", err)
	}
	n, err := q.MembershipCount(ctx, t.ID)
	if err != nil {
		return m, false, fmt.Errorf("count members: %w", err)
	}
	if n >= t.Limits.MaxMembers {
		return m, false, errNoSeat(t)
	}
	m, err = q.MembershipInsert(ctx, dbsqlc.MembershipInsertParams{TenantID: t.ID, UserID: userID, Role: role})
	if err != nil {
		return m, false, fmt.Errorf("insert membership: %w", err)
	}
	return m, true, nil
}

// newPassword validates pw as a new password and hashes it. A password
// outside the length rules is INVALID_ARGUMENT with a violation on the
// password field, shaped as protovalidate's, so clients handle it like
// any other invalid field.
func (s *Service) newPassword(pw string) (string, error) {
	if err := password.Validate(pw); err != nil {
		return "", passwordViolation(err)
	}
	h, err := password.Hash(pw, s.p.Password)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

// checkPassword is UNAUTHENTICATED for a wrong password. Only the holder
// of the mailed token can get this answer, so naming the existing account
// tells nobody else anything.
func checkPassword(pw, hash string) error {
	err := password.Check(pw, hash)
	if errors.Is(err, password.ErrMismatch) {
		return connect.NewError(connect.CodeUnauthenticated, errors.New(
			"this invitation is for an existing account: give that account's current password"))
	}
	if err != nil {
		return fmt.Errorf("check password: %w", err)
	}
	return nil
}

func errInvalidInvitation() error {
	return connect.NewError(connect.CodeNotFound, errors.New("invitation is invalid, expired or already used; ask for a new one"))
}

// passwordField describes AcceptInvitationRequest.password for violations.
var passwordField = (&quartersv1.AcceptInvitationRequest{}).ProtoReflect().Descriptor().Fields().ByName("password")

func passwordViolation(cause error) error {
	msg := cause.Error()
	v := validate.Violations_builder{Violations: []*validate.Violation{validate.Violation_builder{
		Field: validate.FieldPath_builder{Elements: []*validate.FieldPathElement{validate.FieldPathElement_builder{
			FieldNumber: proto.Int32(int32(passwordField.Number())),
			FieldName:   proto.String(string(passwordField.Name())),
			FieldType:   descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(),
		}.Build()}}.Build(),
		RuleId:  proto.String("password.length"),
		Message: proto.String(msg),
	}.Build()}}.Build()
	return apierr.Violations(fmt.Errorf("password: %s", msg), v)
}
