// Package tenancy holds the domain types every layer shares — the Tenant a
// request acts for with its Limits and Members, the authenticated
// Principal and its Role — and the context accessors that carry them. It
// is a leaf: it imports only the standard library and uuid, so the
// database layer (db) and the server packages (internal/...) can both
// depend on it without depending on each other. Model: river's rivertype.
//
// The tenant is set in one place only, the tenant interceptor
// (internal/tenant), from the authenticated principal. It never comes from
// a request body or query string; a subdomain or X-Tenant-ID header only
// selects, and must agree with the credential.
package tenancy

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Tenant is the tenant a request acts for, with what its plan allows.
type Tenant struct {
	ID   uuid.UUID
	Slug string
	// Active is true for a tenant that may use the API: not suspended, and
	// no deletion pending.
	Active bool
	// Deleting is true for a tenant that is not suspended but whose
	// deletion is pending: only the RPCs whose access rule says
	// while_deleting are answered for it, until PurgeTime.
	Deleting bool
	// PurgeTime is when a pending deletion purges the tenant's data; zero
	// if none is pending.
	PurgeTime time.Time
	// Plan is the plan's name ("free", "pro", "enterprise").
	Plan string
	// Limits are effective: the tenant's overrides, else the plan's.
	Limits Limits
	// Features are the effective features: the plan's, with overrides
	// granting or withdrawing individual ones.
	Features map[string]bool
	// Members are the tenant's members by user id: what a signed-in
	// user's access token is checked against on every call. A token
	// whose version is not the member's current one (role changed, signed
	// out everywhere) or whose user is no member (removed) is refused.
	// Every membership change invalidates the cached record.
	Members map[uuid.UUID]Member
}

// Principal is the principal of a signed-in member of t: whatever the
// token says, the role is the membership's current one.
func (t Tenant) Principal(userID uuid.UUID, m Member) *Principal {
	return &Principal{
		TenantID:       t.ID,
		TenantSlug:     t.Slug,
		TenantActive:   t.Active,
		TenantDeleting: t.Deleting,
		Role:           ParseRole(m.Role),
		UserID:         userID,
	}
}

// Member is one member's current role and token version.
type Member struct {
	Role    string
	Version int64
	// Email is the member's email, lowercased: what an external identity
	// provider's token names the person by.
	Email string
}

// MemberByEmail returns the member whose email is email (compared
// case-insensitively) and their user id. It scans Members: a tenant has at
// most max_members of them, and an index would have to survive the JSON
// round trip through the shared cache.
func (t Tenant) MemberByEmail(email string) (uuid.UUID, Member, bool) {
	email = strings.ToLower(email)
	if email == "" {
		return uuid.Nil, Member{}, false
	}
	for id, m := range t.Members {
		if m.Email == email {
			return id, m, true
		}
	}
	return uuid.Nil, Member{}, false
}

// Limits are a tenant's effective limits.
type Limits struct {
	RequestsPerMinute   int64
	Burst               int64
	MaxProjects         int64
	MaxMembers          int64
	MaxAPICallsPerMonth int64
	// StatementTimeout bounds every database statement of a request.
	StatementTimeout time.Duration
}

// Has reports whether the tenant may use feature.
func (t Tenant) Has(feature string) bool { return t.Features[feature] }

// FeatureList is the effective features, sorted.
func (t Tenant) FeatureList() []string {
	var out []string
	for f, on := range t.Features {
		if on {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

type ctxKey struct{}

// NewContext returns ctx acting for t.
func NewContext(ctx context.Context, t Tenant) context.Context {
	return context.WithValue(ctx, ctxKey{}, t)
}

// FromContext returns the tenant ctx acts for, if any.
func FromContext(ctx context.Context) (Tenant, bool) {
	t, ok := ctx.Value(ctxKey{}).(Tenant)
	return t, ok && t.ID != uuid.Nil
}

// ErrNoTenant is returned where a tenant is required and ctx has none.
var ErrNoTenant = errors.New("no tenant in context")

// MustFromContext returns the tenant ctx acts for and panics if there is
// none: for code that only runs behind the tenant interceptor, where a
// missing tenant is a wiring bug.
func MustFromContext(ctx context.Context) Tenant {
	t, ok := FromContext(ctx)
	if !ok {
		panic(ErrNoTenant)
	}
	return t
}

// Principal is an authenticated caller: a credential of one tenant with one
// role.
type Principal struct {
	TenantID   uuid.UUID
	TenantSlug string
	// TenantActive is false for suspended tenants; they authenticate (so the
	// caller learns why it is refused) but the tenant interceptor stops them.
	TenantActive bool
	// TenantDeleting is true for a tenant whose deletion is pending (as
	// far as the credential's check knows): the tenant interceptor admits
	// only the RPCs marked while_deleting.
	TenantDeleting bool
	Role           Role
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

// Role is a member's or key's role. The values are the contract's
// quarters.v1.Role numbers (converted at the API edge), ordered so that a
// greater role may do everything a lesser one may.
type Role int32

// The roles, weakest first.
const (
	RoleUnspecified Role = 0
	RoleMember      Role = 1
	RoleAdmin       Role = 2
	RoleOwner       Role = 3
)

var roleNames = map[Role]string{RoleMember: "member", RoleAdmin: "admin", RoleOwner: "owner"}

// String is the role's lowercase name ("admin"), as stored in the
// database; "unspecified" for RoleUnspecified.
func (r Role) String() string {
	if n, ok := roleNames[r]; ok {
		return n
	}
	return "unspecified"
}

// ParseRole is the inverse of String; unknown names are RoleUnspecified,
// which no access rule admits.
func ParseRole(name string) Role {
	for r, n := range roleNames {
		if strings.EqualFold(n, name) {
			return r
		}
	}
	return RoleUnspecified
}
