// Package tenant carries the request's tenant through context.Context and
// sets it in one place only: the interceptor here, from the authenticated
// principal. The tenant never comes from a request body or query string; a
// subdomain or X-Tenant-ID header only selects, and must agree with the
// credential.
package tenant

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/quarters-dev/quarters/internal/auth"
)

// Tenant is the tenant a request acts for, with what its plan allows.
type Tenant struct {
	ID     uuid.UUID
	Slug   string
	Active bool
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
func (t Tenant) Principal(userID uuid.UUID, m Member) *auth.Principal {
	return &auth.Principal{
		TenantID:     t.ID,
		TenantSlug:   t.Slug,
		TenantActive: t.Active,
		Role:         auth.ParseRole(m.Role),
		UserID:       userID,
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
