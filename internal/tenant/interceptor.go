package tenant

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"

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
		if !p.TenantActive {
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
// through without one). Suspended tenants stop here.
func NewInterceptor(cache *Cache) connect.Interceptor {
	i := &interceptor{cache: cache}
	return intercept.Before(func(ctx context.Context, _ connect.Spec) (context.Context, error) { return i.bind(ctx) })
}

type interceptor struct{ cache *Cache }

func (i *interceptor) bind(ctx context.Context) (context.Context, error) {
	p, ok := auth.FromContext(ctx)
	if !ok || p.Platform {
		return ctx, nil
	}
	t, err := i.cache.Get(ctx, p.TenantID)
	if err != nil {
		return ctx, fmt.Errorf("load tenant %s: %w", p.TenantID, err)
	}
	if !t.Active {
		return ctx, SuspendedError()
	}
	return tenancy.NewContext(ctx, t), nil
}

// SuspendedError is the PERMISSION_DENIED (reason TENANT_SUSPENDED) every
// call of a suspended tenant gets, sign-in included.
func SuspendedError() error {
	return apierr.WithReason(connect.CodePermissionDenied, quartersv1.ErrorReason_ERROR_REASON_TENANT_SUSPENDED,
		"tenant is suspended; contact support to restore access", nil)
}
