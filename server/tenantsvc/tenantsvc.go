// Package tenantsvc implements quarters.v1.TenantService: sign-up and the
// caller's tenant. (The tenant package is the request-scoped tenant itself.)
package tenantsvc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/server/auth"
	"github.com/quarters-dev/quarters/server/password"
	"github.com/quarters-dev/quarters/server/session"
	"github.com/quarters-dev/quarters/server/tenant"
)

// signupKeyRole is the role of the key CreateTenant returns: enough to run
// the tenant, not to hand out ownership.
const signupKeyRole = quartersv1.Role_ROLE_ADMIN

// OwnerInvitationTTL is how long the owner's set-password invitation of
// a sign-up without owner_password stays valid.
const OwnerInvitationTTL = 7 * 24 * time.Hour

// Params are New's inputs.
type Params struct {
	DB       *db.DB
	Sessions *session.Manager
	// Password is the cost of the owner's password hash.
	Password password.Params
}

// Service implements quartersv1connect.TenantServiceHandler.
type Service struct {
	p Params
}

var _ quartersv1connect.TenantServiceHandler = (*Service)(nil)

// New returns the service.
func New(p Params) *Service { return &Service{p: p} }

// CreateTenant creates the tenant, its first API key and its owner (a
// user, created if the email is new, with an owner membership) in one
// transaction. A taken slug is ALREADY_EXISTS and leaves nothing behind.
//
// With owner_password the owner is signed in: a new user gets it as their
// password; an existing user with a password must give that password
// (UNAUTHENTICATED otherwise). Without it, an owner who has no password yet
// gets a set-password invitation (owner_invitation_token).
func (s *Service) CreateTenant(ctx context.Context, req *connect.Request[quartersv1.CreateTenantRequest]) (*connect.Response[quartersv1.CreateTenantResponse], error) {
	id := uuid.New()
	secret, hash, prefix := auth.NewAPIKey()
	pw := req.Msg.GetOwnerPassword()
	var newHash string
	if pw != "" {
		// Hashed before the transaction, so it holds no locks for the
		// hash's tens of milliseconds; unused if the owner has a password.
		var err error
		if newHash, err = password.Hash(pw, s.p.Password); err != nil {
			return nil, err
		}
	}
	var (
		t          dbsqlc.Tenant
		k          dbsqlc.ApiKey
		sess       *quartersv1.Session
		invitation string
	)
	err := s.p.DB.ActAs(ctx, id, func(q *dbsqlc.Queries) error {
		var err error
		t, err = q.TenantInsert(ctx, dbsqlc.TenantInsertParams{
			ID:         id,
			Slug:       req.Msg.GetSlug(),
			Name:       req.Msg.GetName(),
			OwnerEmail: req.Msg.GetOwnerEmail(),
		})
		if isViolation(err, "tenants_slug_key") {
			return connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("slug %q is taken; choose another", req.Msg.GetSlug()))
		}
		if err != nil {
			return fmt.Errorf("insert tenant: %w", err)
		}
		k, err = q.ApiKeyInsert(ctx, dbsqlc.ApiKeyInsertParams{
			TenantID:   id,
			Name:       "sign-up key",
			Role:       auth.RoleName(signupKeyRole),
			SecretHash: hash[:],
			Prefix:     prefix,
		})
		if err != nil {
			return fmt.Errorf("insert api key: %w", err)
		}
		sess, invitation, err = s.addOwner(ctx, q, t, pw, newHash)
		return err
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.CreateTenantResponse{
		Tenant:               tenant.RowToProto(t),
		ApiKey:               auth.KeyToProto(k),
		ApiKeySecret:         secret,
		Session:              sess,
		OwnerInvitationToken: invitation,
	}), nil
}

// addOwner makes the tenant's owner_email an owner member, and signs them
// in (pw given) or invites them to set a password (none set yet).
func (s *Service) addOwner(ctx context.Context, q *dbsqlc.Queries, t dbsqlc.Tenant, pw, newHash string) (*quartersv1.Session, string, error) {
	userID, err := q.UserEnsure(ctx, t.OwnerEmail)
	if err != nil {
		return nil, "", fmt.Errorf("ensure owner user: %w", err)
	}
	m, err := q.MembershipInsert(ctx, dbsqlc.MembershipInsertParams{TenantID: t.ID, UserID: userID, Role: auth.RoleName(quartersv1.Role_ROLE_OWNER)})
	if err != nil {
		return nil, "", fmt.Errorf("insert owner membership: %w", err)
	}
	u, err := q.UserGet(ctx, userID)
	if err != nil {
		return nil, "", fmt.Errorf("get owner user: %w", err)
	}
	switch {
	case pw != "" && u.PasswordHash == nil:
		if _, err := q.UserSetInitialPassword(ctx, dbsqlc.UserSetInitialPasswordParams{ID: u.ID, PasswordHash: &newHash}); err != nil {
			return nil, "", fmt.Errorf("set owner password: %w", err)
		}
		u.PasswordHash = &newHash
	case pw != "":
		if err := password.Check(pw, *u.PasswordHash); err != nil {
			return nil, "", connect.NewError(connect.CodeUnauthenticated, errors.New(
				"owner_email belongs to an existing account with another password: give that password, or leave owner_password empty and sign in later"))
		}
	case u.PasswordHash == nil:
		token, hash, _ := auth.InvitationToken.New()
		if _, err := q.InvitationInsert(ctx, dbsqlc.InvitationInsertParams{
			TenantID:   t.ID,
			Email:      t.OwnerEmail,
			Role:       m.Role,
			TokenHash:  hash[:],
			ExpireTime: time.Now().Add(OwnerInvitationTTL),
		}); err != nil {
			return nil, "", fmt.Errorf("insert owner invitation: %w", err)
		}
		return nil, token, nil
	default:
		// An existing user with a password signs in as usual.
		return nil, "", nil
	}
	sess, err := s.p.Sessions.Start(ctx, q, session.Subject{TenantSlug: t.Slug, User: u, Membership: m})
	return sess, "", err
}

// GetTenant returns the caller's tenant.
func (s *Service) GetTenant(ctx context.Context, _ *connect.Request[quartersv1.GetTenantRequest]) (*connect.Response[quartersv1.GetTenantResponse], error) {
	t, err := db.InTenantV(ctx, s.p.DB, func(q *dbsqlc.Queries) (dbsqlc.Tenant, error) {
		return q.TenantGet(ctx, tenant.MustFromContext(ctx).ID)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.GetTenantResponse{Tenant: tenant.RowToProto(t)}), nil
}

func isViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.ConstraintName == constraint
}
