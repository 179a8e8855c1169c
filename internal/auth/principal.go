// Package auth authenticates callers: API key format and parsing, the
// tenancy.Principal a credential resolves to, and the HTTP middleware that
// resolves it before a request body is decoded.
package auth

import (
	"context"

	"connectrpc.com/authn"

	"github.com/quarters-dev/quarters/internal/tenancy"
)

// NewContext returns ctx carrying p. The middleware stores principals
// through authn, so this uses authn's context slot too (which is why these
// accessors live here, not in the leaf package tenancy).
func NewContext(ctx context.Context, p *tenancy.Principal) context.Context {
	return authn.SetInfo(ctx, p)
}

// FromContext returns the request's principal, if it is authenticated.
func FromContext(ctx context.Context) (*tenancy.Principal, bool) {
	p, ok := authn.GetInfo(ctx).(*tenancy.Principal)
	return p, ok && p != nil
}
