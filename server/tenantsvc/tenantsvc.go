// Package tenantsvc implements quarters.v1.TenantService: sign-up and the
// caller's tenant. (The tenant package is the request-scoped tenant itself.)
package tenantsvc

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/server/auth"
	"github.com/quarters-dev/quarters/server/tenant"
)

// signupKeyRole is the role of the key CreateTenant returns: enough to run
// the tenant, not to hand out ownership.
const signupKeyRole = quartersv1.Role_ROLE_ADMIN

// Service implements quartersv1connect.TenantServiceHandler.
type Service struct {
	db *db.DB
}

var _ quartersv1connect.TenantServiceHandler = (*Service)(nil)

// New returns the service.
func New(d *db.DB) *Service { return &Service{db: d} }

// CreateTenant creates the tenant and its first API key in one transaction.
// A taken slug is ALREADY_EXISTS and leaves nothing behind.
func (s *Service) CreateTenant(ctx context.Context, req *connect.Request[quartersv1.CreateTenantRequest]) (*connect.Response[quartersv1.CreateTenantResponse], error) {
	id := uuid.New()
	secret, hash, prefix := auth.NewAPIKey()
	var (
		t dbsqlc.Tenant
		k dbsqlc.ApiKey
	)
	err := s.db.ActAs(ctx, id, func(q *dbsqlc.Queries) error {
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
		return nil
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.CreateTenantResponse{
		Tenant:       tenant.RowToProto(t),
		ApiKey:       auth.KeyToProto(k),
		ApiKeySecret: secret,
	}), nil
}

// GetTenant returns the caller's tenant.
func (s *Service) GetTenant(ctx context.Context, _ *connect.Request[quartersv1.GetTenantRequest]) (*connect.Response[quartersv1.GetTenantResponse], error) {
	t, err := db.InTenantV(ctx, s.db, func(q *dbsqlc.Queries) (dbsqlc.Tenant, error) {
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
