// Package auth authenticates callers: API key format and parsing, the
// Principal a credential resolves to, and the HTTP middleware that resolves
// it before a request body is decoded.
package auth

import (
	"context"
	"strings"

	"connectrpc.com/authn"

	"github.com/google/uuid"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
)

// Principal is an authenticated caller: a credential of one tenant with one
// role.
type Principal struct {
	TenantID   uuid.UUID
	TenantSlug string
	// TenantActive is false for suspended tenants; they authenticate (so the
	// caller learns why it is refused) but the tenant interceptor stops them.
	TenantActive bool
	Role         quartersv1.Role
	// KeyID is the API key the caller used; uuid.Nil for an access token.
	KeyID uuid.UUID
	// UserID is the signed-in user an access token names; uuid.Nil for an
	// API key.
	UserID uuid.UUID
	// Platform marks the operator's platform credential: no tenant, and
	// only platform RPCs accept it.
	Platform bool
}

// IsUser reports whether p is a signed-in person (an access token) rather
// than an API key or the platform credential.
func (p *Principal) IsUser() bool { return p.UserID != uuid.Nil }

// NewContext returns ctx carrying p. The middleware stores principals
// through authn, so this uses authn's context slot too.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return authn.SetInfo(ctx, p)
}

// FromContext returns the request's principal, if it is authenticated.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := authn.GetInfo(ctx).(*Principal)
	return p, ok && p != nil
}

// RoleName is the lowercase name of r ("admin"), as stored in the database.
func RoleName(r quartersv1.Role) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_"))
}

// ParseRole is the inverse of RoleName; unknown names are ROLE_UNSPECIFIED,
// which no access rule admits.
func ParseRole(name string) quartersv1.Role {
	return quartersv1.Role(quartersv1.Role_value["ROLE_"+strings.ToUpper(name)])
}
