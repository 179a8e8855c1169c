// Package idp accepts access tokens from an external identity provider
// (OIDC or any issuer of JWTs with a JWKS): the provider authenticates the
// person, Quarters authorizes them. A token names a tenant (by id or slug)
// and a person (by email); the person must be a member of that tenant, and
// their role is their Quarters membership's, read from the tenant's cached
// record, so removing a member or changing their role takes effect on their
// next call, as it does for Quarters' own tokens.
//
// Verification trusts nothing in the token but its kid: keys come only
// from the configured JWKS URL, never from jwk, jku, x5u or x5c headers;
// the algorithm must be asymmetric and fit the key; iss must match exactly
// and aud must contain the configured audience.
package idp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/token"
)

// Defaults and bounds.
const (
	DefaultTenantClaim = "tenant"
	DefaultEmailClaim  = "email"

	// MaxTokenSize is the longest token looked at, checked before any
	// parsing so a hostile token costs nothing to refuse.
	MaxTokenSize = 8 << 10
	// Leeway is the clock skew tolerated on exp and nbf.
	Leeway = 60 * time.Second
	// RefreshEvery is how old the cached JWKS may grow before the next
	// token check fetches it again.
	RefreshEvery = 10 * time.Minute
	// RefetchAfter is the least time between two fetches: a token with an
	// unknown kid fetches the JWKS (the provider may have rotated) only if
	// the last fetch is at least this old, so a stream of forged kids
	// cannot make us hammer the provider.
	RefetchAfter = 30 * time.Second
	// FetchTimeout bounds one JWKS fetch.
	FetchTimeout = 5 * time.Second
	// maxJWKSSize caps the JWKS document read.
	maxJWKSSize = 1 << 20
)

// Params are New's required inputs.
type Params struct {
	// Issuer is the iss claim tokens must carry, exactly. Tokens whose
	// (unverified) iss is anything else are not this provider's.
	Issuer string
	// Audience must be one of the token's aud values.
	Audience string
	// JWKSURL serves the provider's public keys; https unless the host is
	// localhost or a loopback address.
	JWKSURL string
	// TenantClaim names the claim holding the tenant's id or slug (default
	// DefaultTenantClaim); EmailClaim the person's email (default
	// DefaultEmailClaim).
	TenantClaim, EmailClaim string
}

// Opts are New's optional inputs; nil means defaults.
type Opts struct {
	// HTTPClient fetches the JWKS (default: a client that refuses
	// redirects to URLs CheckJWKSURL refuses).
	HTTPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger hears about failed fetches and skipped keys.
	Logger *slog.Logger
}

// Verifier checks the identity provider's tokens. It is safe for
// concurrent use.
type Verifier struct {
	p      Params
	client *http.Client
	now    func() time.Time
	logger *slog.Logger

	keys atomic.Pointer[keySet]
	// fetchMu makes fetches one at a time; lastAttempt (guarded by it) is
	// when the last fetch began, successful or not.
	fetchMu     sync.Mutex
	lastAttempt time.Time
}

type keySet struct {
	keys    map[string]Key
	fetched time.Time
}

// CheckJWKSURL returns an error unless raw is an absolute https URL, or
// http to localhost or a loopback address (a provider on the same host,
// or a test).
func CheckJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("jwks url %q: want an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return fmt.Errorf("jwks url %q: want https (http only for localhost)", raw)
}

// New returns a verifier. It fetches nothing yet: the first token does. It
// returns an error if Issuer, Audience or JWKSURL is missing, or JWKSURL
// fails CheckJWKSURL.
func New(p Params, opts *Opts) (*Verifier, error) {
	if p.Issuer == "" || p.Audience == "" || p.JWKSURL == "" {
		return nil, errors.New("idp: issuer, audience and jwks url are all required")
	}
	if err := CheckJWKSURL(p.JWKSURL); err != nil {
		return nil, fmt.Errorf("idp: %w", err)
	}
	if p.TenantClaim == "" {
		p.TenantClaim = DefaultTenantClaim
	}
	if p.EmailClaim == "" {
		p.EmailClaim = DefaultEmailClaim
	}
	if opts == nil {
		opts = &Opts{}
	}
	v := &Verifier{p: p, client: opts.HTTPClient, now: opts.Now, logger: opts.Logger}
	if v.client == nil {
		v.client = &http.Client{
			Timeout: FetchTimeout,
			CheckRedirect: func(r *http.Request, via []*http.Request) error {
				if len(via) >= 3 {
					return errors.New("too many redirects")
				}
				return CheckJWKSURL(r.URL.String())
			},
		}
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.logger == nil {
		v.logger = slog.New(slog.DiscardHandler)
	}
	return v, nil
}

// Issuer is the iss claim the verifier accepts.
func (v *Verifier) Issuer() string { return v.p.Issuer }

// Identity is who a verified token names: a tenant selector (id or slug)
// and an email, both as the token carries them.
type Identity struct {
	Tenant string
	Email  string
}

var (
	errHeader     = errors.New("unexpected header")
	errMissingKid = errors.New("missing kid")
	errUnknownKid = errors.New("unknown kid")
	errAlg        = errors.New("algorithm does not fit the key")
)

// Verify checks raw and returns the identity it names. Every refusal wraps
// auth.ErrInvalidToken: too long, malformed, an algorithm that is not
// asymmetric or does not fit the key, a jwk/jku/x5u/x5c/crit header, no
// kid or a kid not in the JWKS (after one rate-limited refetch), a bad
// signature, wrong iss, aud not containing the audience, exp missing or
// past, nbf in the future (both beyond Leeway), email_verified present and
// not true, or the tenant or email claim missing. An error that does not
// wrap auth.ErrInvalidToken means the JWKS could not be fetched and no keys
// were cached: a failure to decide.
func (v *Verifier) Verify(ctx context.Context, raw string) (Identity, error) {
	if len(raw) > MaxTokenSize {
		return Identity{}, invalid("too long")
	}
	p := jwt.NewParser(
		jwt.WithValidMethods(allAlgs),
		jwt.WithIssuer(v.p.Issuer),
		jwt.WithAudience(v.p.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(v.now),
	)
	var fetchErr error
	claims := jwt.MapClaims{}
	_, err := p.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		for _, h := range []string{"jwk", "jku", "x5u", "x5c", "crit"} {
			if _, ok := t.Header[h]; ok {
				return nil, errHeader
			}
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errMissingKid
		}
		k, err := v.key(ctx, kid)
		if err != nil {
			fetchErr = err
			return nil, err
		}
		// The parser has already refused algorithms outside allAlgs; the key
		// narrows them to its own, so an RSA key never meets HS256 and a
		// P-256 key never meets ES384.
		if !slices.Contains(k.Algs, t.Method.Alg()) {
			return nil, errAlg
		}
		return k.Public, nil
	})
	if fetchErr != nil && !errors.Is(fetchErr, errUnknownKid) {
		return Identity{}, fetchErr
	}
	if err != nil {
		return Identity{}, invalid(reason(err))
	}
	if ev, ok := claims["email_verified"]; ok && ev != true && ev != "true" {
		return Identity{}, invalid("email not verified")
	}
	id := Identity{}
	id.Tenant, _ = claims[v.p.TenantClaim].(string)
	id.Email, _ = claims[v.p.EmailClaim].(string)
	if id.Tenant == "" {
		return Identity{}, invalid("no tenant claim")
	}
	if id.Email == "" {
		return Identity{}, invalid("no email claim")
	}
	return id, nil
}

func invalid(reason string) error {
	return fmt.Errorf("%w: identity provider token: %s", auth.ErrInvalidToken, reason)
}

// reasons maps our key function's refusals to fixed words; the parser's
// are token.JWTReason's.
var reasons = []struct {
	err    error
	reason string
}{
	{errHeader, "unexpected header"},
	{errMissingKid, "missing kid"},
	{errUnknownKid, "unknown kid"},
	{errAlg, "algorithm does not fit the key"},
}

func reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return token.JWTReason(err)
}

// key returns the JWKS key kid. It fetches the JWKS when none is cached,
// when the cached one is older than RefreshEvery, and when kid is unknown
// and the last fetch is at least RefetchAfter old. A failed fetch keeps the
// cached keys. It returns errUnknownKid for a kid the JWKS lacks, and the
// fetch error when there are no keys at all.
func (v *Verifier) key(ctx context.Context, kid string) (Key, error) {
	set := v.keys.Load()
	if set != nil && v.now().Sub(set.fetched) < RefreshEvery {
		if k, ok := set.keys[kid]; ok {
			return k, nil
		}
	}
	set, err := v.refresh(ctx, set)
	if set == nil {
		return Key{}, err
	}
	if k, ok := set.keys[kid]; ok {
		return k, nil
	}
	return Key{}, errUnknownKid
}

// refresh fetches the JWKS unless another caller replaced seen meanwhile
// or the last attempt is under RefetchAfter old, and returns the set to
// use (nil if there is none) with the fetch's error.
func (v *Verifier) refresh(ctx context.Context, seen *keySet) (*keySet, error) {
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	if cur := v.keys.Load(); cur != seen {
		return cur, nil
	}
	now := v.now()
	if !v.lastAttempt.IsZero() && now.Sub(v.lastAttempt) < RefetchAfter {
		if seen == nil {
			return nil, errors.New("idp: jwks unavailable (last fetch failed)")
		}
		return seen, nil
	}
	v.lastAttempt = now
	keys, err := v.fetch(ctx)
	if err != nil {
		v.logger.WarnContext(ctx, "identity provider jwks fetch failed", "url", v.p.JWKSURL, "error", err)
		return seen, fmt.Errorf("idp: %w", err)
	}
	next := &keySet{keys: keys, fetched: now}
	v.keys.Store(next)
	return next, nil
}

func (v *Verifier) fetch(ctx context.Context) (map[string]Key, error) {
	// The request's own cancellation must not fail a fetch other callers
	// are waiting on; the timeout bounds it instead.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.p.JWKSURL, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks: status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, fmt.Errorf("read jwks: %w", err)
	}
	if len(body) > maxJWKSSize {
		return nil, errors.New("jwks larger than 1 MiB")
	}
	keys, skipped, err := ParseJWKS(body)
	for _, s := range skipped {
		v.logger.DebugContext(ctx, "identity provider jwks key skipped", "reason", s)
	}
	return keys, err
}

// PeekIssuer returns the iss claim of raw without verifying anything, for
// routing a token to the verifier that can check it; false if raw is too
// long or not a JWT with a string iss.
func PeekIssuer(raw string) (string, bool) {
	if len(raw) > MaxTokenSize || strings.Count(raw, ".") != 2 {
		return "", false
	}
	var c jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &c); err != nil {
		return "", false
	}
	return c.Issuer, c.Issuer != ""
}
