// Package authsvc implements quarters.v1.AuthService: people's sessions
// (sign-in, refresh, sign-out, switching tenant), their passwords and
// email proof (reset, verification, change) and API key management.
// (Package auth is authentication itself; package session issues tokens.)
package authsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/jobs"
	"github.com/quarters-dev/quarters/internal/page"
	"github.com/quarters-dev/quarters/internal/password"
	"github.com/quarters-dev/quarters/internal/protoconv"
	"github.com/quarters-dev/quarters/internal/session"
	"github.com/quarters-dev/quarters/internal/tenancy"
	"github.com/quarters-dev/quarters/internal/tenant"
	"github.com/quarters-dev/quarters/internal/webhook"
)

// Params are New's inputs.
type Params struct {
	DB       *db.DB
	Sessions *session.Manager
	Tenants  *tenant.Cache
	// Jobs enqueues the reset and verification mails, and the webhook
	// deliveries of api_key.created and api_key.revoked.
	Jobs *jobs.Client
	// Password is the argon2id cost the server hashes with; sign-in for
	// an unknown email spends the same on a decoy.
	Password password.Params
	Logger   *slog.Logger
}

// Service implements quartersv1connect.AuthServiceHandler.
type Service struct {
	p Params
}

var _ quartersv1connect.AuthServiceHandler = (*Service)(nil)

// New returns the service.
func New(p Params) *Service { return &Service{p: p} }

// CreateApiKey creates a key with at most the caller's role; nobody can
// mint a credential stronger than their own. The key records its creator
// (see ApiKeyInsert), and RemoveMember revokes a member's keys.
func (s *Service) CreateApiKey(ctx context.Context, req *connect.Request[quartersv1.CreateApiKeyRequest]) (*connect.Response[quartersv1.CreateApiKeyResponse], error) {
	caller, _ := auth.FromContext(ctx)
	if tenancy.Role(req.Msg.GetRole()) > caller.Role {
		return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf(
			"cannot create a key with role %s: this credential has role %s", protoconv.RoleName(req.Msg.GetRole()), caller.Role.String()))
	}
	secret, hash, prefix := auth.NewAPIKey()
	params := dbsqlc.ApiKeyInsertParams{
		TenantID:   tenancy.MustFromContext(ctx).ID,
		Name:       req.Msg.GetName(),
		Role:       protoconv.RoleName(req.Msg.GetRole()),
		SecretHash: hash[:],
		Prefix:     prefix,
	}
	// The creator: the signed-in user, or the user behind the calling key,
	// so that removing them revokes this key too.
	if caller.IsUser() {
		params.CreatedBy = &caller.UserID
	} else if caller.KeyID != uuid.Nil {
		params.CreatorKeyID = &caller.KeyID
	}
	if req.Msg.GetExpireTime() != nil {
		t := req.Msg.GetExpireTime().AsTime()
		params.ExpireTime = &t
	}
	t := tenancy.MustFromContext(ctx)
	var key *quartersv1.ApiKey
	err := webhook.InTx(ctx, s.p.DB, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		k, err := q.ApiKeyInsert(ctx, params)
		if err != nil {
			return err
		}
		// The event carries the key as ApiKey shows it: never the secret.
		key = protoconv.APIKey(k)
		return webhook.Emit(ctx, q, tx, s.p.Jobs, t, webhook.APIKeyCreated, key)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.CreateApiKeyResponse{ApiKey: key, Secret: secret}), nil
}

// ListApiKeys lists the tenant's keys, newest first, revoked ones included.
func (s *Service) ListApiKeys(ctx context.Context, req *connect.Request[quartersv1.ListApiKeysRequest]) (*connect.Response[quartersv1.ListApiKeysResponse], error) {
	rows, next, err := page.Load(req.Msg, "", func(c page.Cursor, limit int32) ([]dbsqlc.ApiKey, error) {
		return db.InTenantV(ctx, s.p.DB, func(q *dbsqlc.Queries) ([]dbsqlc.ApiKey, error) {
			return q.ApiKeyList(ctx, dbsqlc.ApiKeyListParams{
				TenantID: tenancy.MustFromContext(ctx).ID, BeforeTime: c.Time, BeforeID: c.ID, PageLimit: limit,
			})
		})
	}, func(k dbsqlc.ApiKey) page.Cursor { return page.Cursor{Time: k.CreateTime, ID: k.ID} })
	if err != nil {
		return nil, err
	}
	resp := &quartersv1.ListApiKeysResponse{NextPageToken: next, ApiKeys: make([]*quartersv1.ApiKey, len(rows))}
	for i, k := range rows {
		resp.ApiKeys[i] = protoconv.APIKey(k)
	}
	return connect.NewResponse(resp), nil
}

// RevokeApiKey revokes a key of the caller's tenant. Replicas cache live
// keys, so the tenant is invalidated after the commit: every replica drops
// the tenant's cached keys, and the revocation holds from the next call.
func (s *Service) RevokeApiKey(ctx context.Context, req *connect.Request[quartersv1.RevokeApiKeyRequest]) (*connect.Response[quartersv1.RevokeApiKeyResponse], error) {
	t := tenancy.MustFromContext(ctx)
	tenantID := t.ID
	var key *quartersv1.ApiKey
	err := webhook.InTx(ctx, s.p.DB, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		params := dbsqlc.ApiKeyRevokeParams{TenantID: tenantID, ID: uuid.MustParse(req.Msg.GetId()), RevokeTime: time.Now()}
		k, err := q.ApiKeyRevokeLive(ctx, dbsqlc.ApiKeyRevokeLiveParams(params))
		if errors.Is(err, db.ErrNotFound) {
			// Revoked before (or unknown: NOT_FOUND from here): the
			// first revocation's time stands, and made the event.
			k, err = q.ApiKeyRevoke(ctx, params)
			if err == nil {
				key = protoconv.APIKey(k)
			}
			return err
		}
		if err != nil {
			return err
		}
		key = protoconv.APIKey(k)
		return webhook.Emit(ctx, q, tx, s.p.Jobs, t, webhook.APIKeyRevoked, key)
	})
	if err != nil {
		return nil, err
	}
	if err := s.p.Tenants.Committed(ctx, tenantID, "the revoked key"); err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.RevokeApiKeyResponse{ApiKey: key}), nil
}
