package tenant

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"

	"connectrpc.com/connect"

	"github.com/quarters-dev/quarters/internal/apierr"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/intercept"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// HeaderName is the optional tenant selector header; it holds a tenant id
// or slug.
const HeaderName = "X-Tenant-ID"

// CheckSelectors returns an auth.CheckFunc that refuses a request whose
// tenant selectors disagree with its credential: the X-Tenant-ID header (id
// or slug) and, when baseDomain is set, the subdomain <slug>.<baseDomain>.
// It also refuses suspended tenants. Both are PERMISSION_DENIED with an
// ErrorInfo reason. Running in the authentication middleware, it rejects
// before the request body is read.
func CheckSelectors(baseDomain string) auth.CheckFunc {
	baseDomain = strings.ToLower(strings.TrimSuffix(baseDomain, "."))
	return func(r *http.Request, p *tenancy.Principal) error {
		if sel := r.Header.Get(HeaderName); sel != "" && sel != p.TenantID.String() && sel != p.TenantSlug {
			return mismatch("header", sel)
		}
		if sub, ok := subdomain(r.Host, baseDomain); ok && sub != p.TenantSlug {
			return mismatch("subdomain", sub)
		}
		// A tenant whose deletion is pending is left to the tenant
		// interceptor, which knows the RPC's rule (while_deleting).
		if !p.TenantActive && !p.TenantDeleting {
			return SuspendedError()
		}
		return nil
	}
}

// SelectorMiddleware records which tenant the request selects (the
// X-Tenant-ID header, else the subdomain of baseDomain) in its context, for
// calls that choose a tenant before any credential names one: SignIn.
// Read it with SelectorFromContext.
func SelectorMiddleware(baseDomain string, next http.Handler) http.Handler {
	baseDomain = strings.ToLower(strings.TrimSuffix(baseDomain, "."))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sel := r.Header.Get(HeaderName)
		if sel == "" {
			sel, _ = subdomain(r.Host, baseDomain)
		}
		if sel != "" {
			r = r.WithContext(context.WithValue(r.Context(), selectorKey{}, sel))
		}
		next.ServeHTTP(w, r)
	})
}

type selectorKey struct{}

// SelectorFromContext returns the tenant selector SelectorMiddleware found
// (a tenant id or slug), or "".
func SelectorFromContext(ctx context.Context) string {
	s, _ := ctx.Value(selectorKey{}).(string)
	return s
}

// subdomain returns the single label in front of baseDomain in host.
func subdomain(host, baseDomain string) (string, bool) {
	if baseDomain == "" {
		return "", false
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	label, ok := strings.CutSuffix(host, "."+baseDomain)
	if !ok || label == "" || strings.Contains(label, ".") {
		return "", false
	}
	return label, true
}

func mismatch(selector, value string) error {
	return apierr.WithReason(connect.CodePermissionDenied, quartersv1.ErrorReason_ERROR_REASON_TENANT_MISMATCH,
		fmt.Sprintf("tenant selected by %s %q does not match the credential's tenant", selector, value),
		map[string]string{"selector": selector})
}

// NewInterceptor returns the interceptor that binds an authenticated call
// to its principal's tenant record, from the cache (public calls pass
// through without one). Suspended tenants stop here, and so do tenants
// whose deletion is pending, unless whileDeleting(procedure) says the
// procedure's access rule admits them (access.Rules.WhileDeleting, from
// the contract's while_deleting). For such a procedure the call's context
// also says so (DeletingAllowed), for the public RPCs that find their
// tenant themselves (sign-in, refresh) through Cache.GetActive.
func NewInterceptor(cache *Cache, whileDeleting func(procedure string) bool) connect.Interceptor {
	i := &interceptor{cache: cache, whileDeleting: whileDeleting}
	return intercept.Before(func(ctx context.Context, spec connect.Spec) (context.Context, error) {
		return i.bind(ctx, spec.Procedure)
	})
}

type interceptor struct {
	cache         *Cache
	whileDeleting func(procedure string) bool
}

func (i *interceptor) bind(ctx context.Context, procedure string) (context.Context, error) {
	deleting := i.whileDeleting != nil && i.whileDeleting(procedure)
	if deleting {
		ctx = context.WithValue(ctx, deletingKey{}, true)
	}
	p, ok := auth.FromContext(ctx)
	if !ok || p.Platform {
		return ctx, nil
	}
	t, err := i.cache.Get(ctx, p.TenantID)
	if err != nil {
		return ctx, fmt.Errorf("load tenant %s: %w", p.TenantID, err)
	}
	if err := Admit(t, deleting); err != nil {
		return ctx, err
	}
	return tenancy.NewContext(ctx, t), nil
}

// Admit returns nil if t may be called: it is active, or its deletion is
// pending and the call's rule says while_deleting; otherwise Refusal(t).
func Admit(t tenancy.Tenant, whileDeleting bool) error {
	if t.Active || (t.Deleting && whileDeleting) {
		return nil
	}
	return Refusal(t)
}

type deletingKey struct{}

// DeletingAllowed reports whether the call's RPC is admitted for a tenant
// whose deletion is pending (its rule says while_deleting).
func DeletingAllowed(ctx context.Context) bool {
	ok, _ := ctx.Value(deletingKey{}).(bool)
	return ok
}

// Refusal is the error every call of a tenant that may not use the API
// gets: SuspendedError, or DeletionPendingError for a tenant whose
// deletion is pending.
func Refusal(t tenancy.Tenant) error {
	if t.Deleting {
		return DeletionPendingError(t.PurgeTime)
	}
	return SuspendedError()
}

// DeletionPendingError is the PERMISSION_DENIED (reason
// TENANT_DELETION_PENDING, metadata purge_time) the calls of a tenant
// awaiting deletion get, but for the RPCs marked while_deleting.
func DeletionPendingError(purge time.Time) error {
	at := purge.UTC().Format(time.RFC3339)
	return apierr.WithReason(connect.CodePermissionDenied, quartersv1.ErrorReason_ERROR_REASON_TENANT_DELETION_PENDING,
		"tenant is scheduled for deletion at "+at+"; its owner may still export its data or cancel the deletion (TenantService.CancelTenantDeletion)",
		map[string]string{"purge_time": at})
}

// SuspendedError is the PERMISSION_DENIED (reason TENANT_SUSPENDED) every
// call of a suspended tenant gets, sign-in included.
func SuspendedError() error {
	return apierr.WithReason(connect.CodePermissionDenied, quartersv1.ErrorReason_ERROR_REASON_TENANT_SUSPENDED,
		"tenant is suspended; contact support to restore access", nil)
}
