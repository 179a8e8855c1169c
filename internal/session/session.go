// Package session starts and continues people's sessions: it signs access
// tokens (short-lived JWTs, see package token) and stores refresh tokens
// (opaque, single-use, hashed), and it checks access tokens on every call
// against the tenant cache, so a revoked membership fails at once without a
// database read per request.
package session

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/protoconv"
	"github.com/quarters-dev/quarters/internal/tenancy"
	"github.com/quarters-dev/quarters/internal/tenant"
	"github.com/quarters-dev/quarters/internal/token"
)

// Defaults for Params.
const (
	DefaultAccessTTL  = token.MaxTTL
	DefaultRefreshTTL = 30 * 24 * time.Hour
	DefaultIssuer     = "quarters"
	DefaultAudience   = "quarters-api"
)

// Params are NewManager's inputs.
type Params struct {
	// Keys signs and verifies access tokens; nil generates a key set in
	// memory (one process only: tokens do not survive a restart).
	Keys *token.KeySet
	// Issuer and Audience are the iss and aud claims (defaults above).
	Issuer, Audience string
	// AccessTTL (at most token.MaxTTL) and RefreshTTL bound the tokens'
	// lifetimes (defaults above).
	AccessTTL, RefreshTTL time.Duration
	// Now is the clock, for tests; nil is time.Now.
	Now func() time.Time
}

// Manager issues and checks sessions. It is safe for concurrent use.
type Manager struct {
	issuer atomic.Pointer[token.Issuer]
	// reload, when set (by NewKeyStore), refreshes the key set from the
	// database before a token with an unknown kid is refused.
	reload     atomic.Pointer[func(context.Context)]
	refreshTTL time.Duration
	now        func() time.Time
	p          Params
}

// NewManager returns a manager. It returns an error if the parameters
// cannot sign a token (e.g. AccessTTL above token.MaxTTL).
func NewManager(p Params) (*Manager, error) {
	if p.Issuer == "" {
		p.Issuer = DefaultIssuer
	}
	if p.Audience == "" {
		p.Audience = DefaultAudience
	}
	if p.AccessTTL == 0 {
		p.AccessTTL = DefaultAccessTTL
	}
	if p.RefreshTTL == 0 {
		p.RefreshTTL = DefaultRefreshTTL
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.AccessTTL < 0 || p.AccessTTL > token.MaxTTL {
		return nil, fmt.Errorf("session: access token ttl %v outside (0, %v]", p.AccessTTL, token.MaxTTL)
	}
	if p.Keys == nil {
		ks, err := token.NewKeySet(nil)
		if err != nil {
			return nil, err
		}
		p.Keys = ks
	}
	m := &Manager{refreshTTL: p.RefreshTTL, now: p.Now, p: p}
	m.SetKeys(p.Keys)
	return m, nil
}

// SetKeys replaces the key set that signs and verifies, e.g. after another
// replica rotated the shared one.
func (m *Manager) SetKeys(ks *token.KeySet) {
	m.issuer.Store(&token.Issuer{Keys: ks, Issuer: m.p.Issuer, Audience: m.p.Audience, TTL: m.p.AccessTTL})
}

// Keys is the key set in use (its public half is the JWKS).
func (m *Manager) Keys() *token.KeySet { return m.issuer.Load().Keys }

// Subject is who a session is for: a user's membership in a tenant.
type Subject struct {
	TenantSlug string
	User       dbsqlc.User
	Membership dbsqlc.Membership
}

// Start begins a new session (a new refresh-token family) for s, in the
// transaction of q, which must act for s's tenant.
func (m *Manager) Start(ctx context.Context, q *dbsqlc.Queries, s Subject) (*quartersv1.Session, error) {
	return m.issue(ctx, q, s, uuid.New())
}

// Continue issues the next tokens of the session family for s, after its
// previous refresh token was used (RotateUsed).
func (m *Manager) Continue(ctx context.Context, q *dbsqlc.Queries, s Subject, family uuid.UUID) (*quartersv1.Session, error) {
	return m.issue(ctx, q, s, family)
}

func (m *Manager) issue(ctx context.Context, q *dbsqlc.Queries, s Subject, family uuid.UUID) (*quartersv1.Session, error) {
	now := m.now()
	iss := m.issuer.Load()
	access, err := iss.Sign(token.Claims{
		RegisteredClaims: jwtSubject(s.User.ID),
		TenantID:         s.Membership.TenantID.String(),
		Role:             s.Membership.Role,
		Version:          s.Membership.Version,
	}, now)
	if err != nil {
		return nil, fmt.Errorf("sign access token: %w", err)
	}
	secret, hash, _ := auth.RefreshToken.New()
	rt, err := q.RefreshTokenInsert(ctx, dbsqlc.RefreshTokenInsertParams{
		TenantID:   s.Membership.TenantID,
		UserID:     s.User.ID,
		FamilyID:   family,
		TokenHash:  hash[:],
		ExpireTime: now.Add(m.refreshTTL),
	})
	if err != nil {
		return nil, fmt.Errorf("insert refresh token: %w", err)
	}
	return &quartersv1.Session{
		AccessToken:            access,
		AccessTokenExpireTime:  timestamppb.New(now.Add(iss.TTL)),
		RefreshToken:           secret,
		RefreshTokenExpireTime: timestamppb.New(rt.ExpireTime),
		User:                   UserToProto(s.User),
		TenantId:               s.Membership.TenantID.String(),
		TenantSlug:             s.TenantSlug,
		Role:                   protoconv.RoleOf(s.Membership.Role),
	}, nil
}

// ErrRefreshReused is returned by UseRefreshToken when the token was
// already exchanged: its whole family has just been revoked.
var ErrRefreshReused = errors.New("refresh token reused")

// ErrRefreshInvalid is returned by UseRefreshToken for a token that is
// unknown, expired or revoked.
var ErrRefreshInvalid = errors.New("refresh token invalid")

// UseRefreshToken marks the refresh token with hash used, in q's
// transaction (acting for its tenant), and returns its row, whose family
// and user Continue the session. A token used before revokes its family,
// moves the membership's version on (so the family's live access token
// fails at once, not when it expires; the member's other sessions in the
// tenant refresh) and returns ErrRefreshReused: the caller must commit
// that, and invalidate the tenant, before refusing the call. Unknown,
// expired and revoked tokens are ErrRefreshInvalid.
func UseRefreshToken(ctx context.Context, q *dbsqlc.Queries, tenantID uuid.UUID, hash [32]byte) (dbsqlc.RefreshToken, error) {
	rt, err := q.RefreshTokenUse(ctx, dbsqlc.RefreshTokenUseParams{TenantID: tenantID, TokenHash: hash[:]})
	if err == nil {
		return rt, nil
	}
	if !errors.Is(err, db.ErrNotFound) {
		return rt, fmt.Errorf("use refresh token: %w", err)
	}
	old, err := q.RefreshTokenGet(ctx, dbsqlc.RefreshTokenGetParams{TenantID: tenantID, TokenHash: hash[:]})
	if errors.Is(err, db.ErrNotFound) {
		return rt, ErrRefreshInvalid
	}
	if err != nil {
		return rt, fmt.Errorf("get refresh token: %w", err)
	}
	if old.UsedTime == nil || old.RevokeTime != nil {
		return rt, ErrRefreshInvalid
	}
	if _, err := q.RefreshTokenRevokeFamily(ctx, dbsqlc.RefreshTokenRevokeFamilyParams{TenantID: tenantID, FamilyID: old.FamilyID}); err != nil {
		return rt, fmt.Errorf("revoke session: %w", err)
	}
	if err := q.MembershipBumpVersion(ctx, dbsqlc.MembershipBumpVersionParams{TenantID: tenantID, UserID: old.UserID}); err != nil {
		return rt, fmt.Errorf("end session's access tokens: %w", err)
	}
	return old, ErrRefreshReused
}

// VerifyFunc returns the auth middleware's access-token check: the
// signature and claims (package token), then the member's current version
// in the tenant's cached record. A removed member, a changed role or a
// "sign out everywhere" fails here on the next call, with no database read
// while the record is cached.
func (m *Manager) VerifyFunc(tenants *tenant.Cache) auth.VerifyTokenFunc {
	return func(ctx context.Context, raw string) (*tenancy.Principal, error) {
		c, err := m.verify(ctx, raw)
		if errors.Is(err, token.ErrInvalidToken) {
			return nil, fmt.Errorf("%w: %w", auth.ErrInvalidToken, err)
		}
		if err != nil {
			return nil, err
		}
		// Verify checked both are UUIDs.
		userID, tenantID := uuid.MustParse(c.Subject), uuid.MustParse(c.TenantID)
		t, err := tenants.Get(ctx, tenantID)
		if errors.Is(err, db.ErrNotFound) {
			return nil, fmt.Errorf("%w: tenant gone", auth.ErrInvalidToken)
		}
		if err != nil {
			return nil, fmt.Errorf("load tenant %s: %w", tenantID, err)
		}
		mem, ok := t.Members[userID]
		if !ok || mem.Version != c.Version || mem.Role != c.Role {
			return nil, fmt.Errorf("%w: revoked", auth.ErrInvalidToken)
		}
		return t.Principal(userID, mem), nil
	}
}

// verify checks raw's signature and claims. A kid this replica does not
// know may be a key another replica has just rotated in: with a KeyStore
// attached, the set is reloaded (at most once a second, see KeyStore) and
// the token checked again.
func (m *Manager) verify(ctx context.Context, raw string) (token.Claims, error) {
	iss := m.issuer.Load()
	c, err := iss.Verify(raw, m.now())
	if !errors.Is(err, token.ErrUnknownKey) {
		return c, err
	}
	if reload := m.reload.Load(); reload != nil {
		(*reload)(ctx)
		if next := m.issuer.Load(); next != iss {
			return next.Verify(raw, m.now())
		}
	}
	return c, err
}

// UserToProto converts a users row for the API, for the user themself (a
// session, GetCurrentUser); the password hash never leaves the server.
func UserToProto(u dbsqlc.User) *quartersv1.User {
	return &quartersv1.User{
		Id:            u.ID.String(),
		Email:         u.Email,
		HasPassword:   u.PasswordHash != nil,
		CreateTime:    timestamppb.New(u.CreateTime),
		EmailVerified: u.EmailVerifyTime != nil,
	}
}

func jwtSubject(id uuid.UUID) jwt.RegisteredClaims { return jwt.RegisteredClaims{Subject: id.String()} }
