package idp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/tenancy"
	"github.com/quarters-dev/quarters/internal/tenant"
)

// ErrUnknownTenant is what a ResolveFunc returns (possibly wrapped) when
// no tenant has the given id or slug.
var ErrUnknownTenant = errors.New("unknown tenant")

// ResolveFunc returns the id of the tenant whose id or slug is selector,
// or an error wrapping ErrUnknownTenant.
type ResolveFunc func(ctx context.Context, selector string) (uuid.UUID, error)

// VerifyParams are VerifyFunc's inputs.
type VerifyParams struct {
	// Resolve turns the tenant claim into a tenant id (a database read;
	// results are kept for resolveTTL).
	Resolve ResolveFunc
	// Tenants holds the tenants' records, whose members the token's email
	// is looked up in.
	Tenants *tenant.Cache
	// Next checks every token whose unverified iss is not the provider's:
	// Quarters' own access tokens.
	Next auth.VerifyTokenFunc
}

// How long tenant selectors stay resolved. A slug that moves to another
// tenant is caught at once (the record's slug no longer matches); a tenant
// created after an unknown selector was seen is found after
// unknownTenantTTL.
const (
	resolveTTL       = 5 * time.Minute
	unknownTenantTTL = 30 * time.Second
	maxResolved      = 10000
)

// VerifyFunc returns the auth middleware's access-token check: a token
// whose iss is the provider's is verified here (Verify) and mapped to the
// member its email names in the tenant its tenant claim names, with that
// member's Quarters role; any other token goes to p.Next. Refusals wrap
// auth.ErrInvalidToken: a token Verify refuses, an unknown tenant, or an
// email that is no member's there.
func (v *Verifier) VerifyFunc(p VerifyParams) auth.VerifyTokenFunc {
	r := &resolver{resolve: p.Resolve, now: v.now, m: map[string]resolved{}}
	return func(ctx context.Context, raw string) (*tenancy.Principal, error) {
		if iss, ok := PeekIssuer(raw); !ok || iss != v.p.Issuer {
			return p.Next(ctx, raw)
		}
		id, err := v.Verify(ctx, raw)
		if err != nil {
			return nil, err
		}
		t, err := r.tenant(ctx, p.Tenants, id.Tenant)
		if err != nil {
			return nil, err
		}
		userID, mem, ok := t.MemberByEmail(id.Email)
		if !ok {
			return nil, fmt.Errorf("%w: identity provider token: not a member", auth.ErrInvalidToken)
		}
		return t.Principal(userID, mem), nil
	}
}

// resolver keeps tenant selectors resolved in memory, since resolving is a
// database read and the tenant claim is the same on every call.
type resolver struct {
	resolve ResolveFunc
	now     func() time.Time
	mu      sync.Mutex
	m       map[string]resolved
}

type resolved struct {
	id      uuid.UUID // uuid.Nil: no such tenant
	expires time.Time
}

// tenant returns the record of the tenant selector names. A cached
// resolution whose record no longer answers to selector (the slug was
// renamed, the tenant deleted) is resolved again.
func (r *resolver) tenant(ctx context.Context, tenants *tenant.Cache, selector string) (tenancy.Tenant, error) {
	for attempt := 0; ; attempt++ {
		id, cached, err := r.lookup(ctx, selector)
		if err != nil {
			return tenancy.Tenant{}, err
		}
		if id == uuid.Nil {
			return tenancy.Tenant{}, fmt.Errorf("%w: identity provider token: unknown tenant", auth.ErrInvalidToken)
		}
		t, err := tenants.Get(ctx, id)
		if err == nil && (t.Slug == selector || strings.EqualFold(t.ID.String(), selector)) {
			return t, nil
		}
		if err != nil && !errors.Is(err, db.ErrNotFound) {
			return tenancy.Tenant{}, fmt.Errorf("load tenant %s: %w", id, err)
		}
		r.forget(selector)
		if !cached || attempt > 0 {
			return tenancy.Tenant{}, fmt.Errorf("%w: identity provider token: unknown tenant", auth.ErrInvalidToken)
		}
	}
}

// lookup resolves selector, from memory if it can; cached reports whether
// it did.
func (r *resolver) lookup(ctx context.Context, selector string) (id uuid.UUID, cached bool, err error) {
	now := r.now()
	r.mu.Lock()
	e, ok := r.m[selector]
	r.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.id, true, nil
	}
	id, err = r.resolve(ctx, selector)
	ttl := resolveTTL
	if errors.Is(err, ErrUnknownTenant) {
		id, err, ttl = uuid.Nil, nil, unknownTenantTTL
	}
	if err != nil {
		return uuid.Nil, false, fmt.Errorf("resolve tenant: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Entries come only from tokens the provider signed, but a bound keeps
	// a misbehaving provider from growing the map without end.
	if len(r.m) >= maxResolved {
		clear(r.m)
	}
	r.m[selector] = resolved{id: id, expires: now.Add(ttl)}
	return id, false, nil
}

func (r *resolver) forget(selector string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, selector)
}
