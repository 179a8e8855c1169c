// Package tenant carries the request's tenant through context.Context and
// sets it in one place only: the interceptor here, from the authenticated
// principal. The tenant never comes from a request body or query string; a
// subdomain or X-Tenant-ID header only selects, and must agree with the
// credential.
package tenant

import (
	"context"
	"errors"

	"github.com/google/uuid"
)

// Tenant identifies the tenant a request acts for.
type Tenant struct {
	ID   uuid.UUID
	Slug string
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
