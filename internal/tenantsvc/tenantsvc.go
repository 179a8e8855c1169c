// Package tenantsvc implements quarters.v1.TenantService: sign-up and the
// caller's tenant: its export and its deletion. (The tenant package is the
// request-scoped tenant itself.)
package tenantsvc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/jobs"
	"github.com/quarters-dev/quarters/internal/notify"
	"github.com/quarters-dev/quarters/internal/password"
	"github.com/quarters-dev/quarters/internal/protoconv"
	"github.com/quarters-dev/quarters/internal/tenancy"
	"github.com/quarters-dev/quarters/internal/tenant"
)

// signupKeyRole is the role of the key CreateTenant returns: enough to run
// the tenant, not to hand out ownership.
const signupKeyRole = quartersv1.Role_ROLE_ADMIN

// Params are New's inputs.
type Params struct {
	DB *db.DB
	// Jobs enqueues the owner's mail in the sign-up's transaction.
	Jobs *jobs.Client
	// Password is the cost of the owner's password hash.
	Password password.Params
	// Tenants is the tenant cache, told of a deletion (and its
	// cancellation) so every replica refuses (or admits) the tenant at
	// once.
	Tenants *tenant.Cache
	// DeletionGrace is how long a deleted tenant waits for its purge
	// (default deletion.DefaultGrace).
	DeletionGrace time.Duration
}

// Service implements quartersv1connect.TenantServiceHandler.
type Service struct {
	p Params
}

var _ quartersv1connect.TenantServiceHandler = (*Service)(nil)

// New returns the service.
func New(p Params) *Service { return &Service{p: p} }

// CreateTenant creates the tenant, its first API key and its owner (a
// user, created if the email is new, with an owner membership), and
// enqueues the owner's mail, in one transaction. A taken slug is
// ALREADY_EXISTS and leaves nothing behind.
//
// Nobody proves anything about owner_email here, so the call never sets
// or checks the password of an existing account, and never signs anyone
// in: a new account gets owner_password (usable once the mailed link
// verifies the address), or a mailed link to set one; an existing account
// gets a notice. The answer is the same in every case, after the same
// work (owner_password is hashed whenever given, and the user is found or
// created, with that hash, in one statement): it does not tell whether
// owner_email had an account.
func (s *Service) CreateTenant(ctx context.Context, req *connect.Request[quartersv1.CreateTenantRequest]) (*connect.Response[quartersv1.CreateTenantResponse], error) {
	id := uuid.New()
	secret, hash, prefix := auth.NewAPIKey()
	pw := req.Msg.GetOwnerPassword()
	var newHash *string
	if pw != "" {
		// Hashed before the transaction, so it holds no locks for the
		// hash's tens of milliseconds.
		h, err := password.Hash(pw, s.p.Password)
		if err != nil {
			return nil, err
		}
		newHash = &h
	}
	var (
		t dbsqlc.Tenant
		k dbsqlc.ApiKey
	)
	err := s.p.DB.ActAsTx(ctx, id, func(q *dbsqlc.Queries, tx pgx.Tx) error {
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
		// The sign-up key belongs to no member: whoever signed up holds
		// it, and nobody has proved to be owner_email.
		k, err = q.ApiKeyInsert(ctx, dbsqlc.ApiKeyInsertParams{
			TenantID:   id,
			Name:       "sign-up key",
			Role:       protoconv.RoleName(signupKeyRole),
			SecretHash: hash[:],
			Prefix:     prefix,
		})
		if err != nil {
			return fmt.Errorf("insert api key: %w", err)
		}
		owner, err := q.UserEnsure(ctx, dbsqlc.UserEnsureParams{Email: t.OwnerEmail, PasswordHash: newHash})
		if err != nil {
			return fmt.Errorf("ensure owner user: %w", err)
		}
		if _, err := q.MembershipInsert(ctx, dbsqlc.MembershipInsertParams{TenantID: id, UserID: owner.ID, Role: protoconv.RoleName(quartersv1.Role_ROLE_OWNER)}); err != nil {
			return fmt.Errorf("insert owner membership: %w", err)
		}
		return s.p.Jobs.InsertTx(ctx, tx, notify.SignUp(id, owner.ID, owner.Created, newHash != nil))
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.CreateTenantResponse{
		Tenant:       protoconv.Tenant(t),
		ApiKey:       protoconv.APIKey(k),
		ApiKeySecret: secret,
	}), nil
}

// GetTenant returns the caller's tenant.
func (s *Service) GetTenant(ctx context.Context, _ *connect.Request[quartersv1.GetTenantRequest]) (*connect.Response[quartersv1.GetTenantResponse], error) {
	t, err := db.InTenantV(ctx, s.p.DB, func(q *dbsqlc.Queries) (dbsqlc.Tenant, error) {
		return q.TenantGet(ctx, tenancy.MustFromContext(ctx).ID)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.GetTenantResponse{Tenant: protoconv.Tenant(t)}), nil
}

func isViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.ConstraintName == constraint
}
