package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/authn"
	"connectrpc.com/connect"
	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// ErrUnknownKey is what a LookupFunc returns when no live key has the hash.
var ErrUnknownKey = errors.New("unknown API key")

// Record is what a LookupFunc finds for a key hash.
type Record struct {
	tenancy.Principal
	// SecretHash is the stored hash, compared again in constant time.
	SecretHash []byte
	// ExpireTime is when the key stops working; nil if never.
	ExpireTime *time.Time
}

// LookupFunc finds the live API key stored under hash. It returns
// ErrUnknownKey when there is none (never stored, revoked or expired).
type LookupFunc func(ctx context.Context, hash [32]byte) (*Record, error)

// CheckFunc vets an authenticated principal against the HTTP request, e.g.
// that a tenant selector (subdomain, X-Tenant-ID) agrees with it. Its error
// is returned to the caller as is.
type CheckFunc func(r *http.Request, p *tenancy.Principal) error

// ErrInvalidToken is what a VerifyTokenFunc returns (possibly wrapped) for
// an access token that must be refused: malformed, badly signed, expired,
// or revoked.
var ErrInvalidToken = errors.New("invalid access token")

// VerifyTokenFunc resolves a bearer token that is not an API key (an access
// token) to its principal. It returns an error wrapping ErrInvalidToken for
// a token to refuse; any other error is a failure to decide.
type VerifyTokenFunc func(ctx context.Context, token string) (*tenancy.Principal, error)

// MiddlewareParams are NewMiddleware's inputs.
type MiddlewareParams struct {
	Lookup LookupFunc
	// VerifyToken checks access tokens; nil refuses every bearer token
	// that is not an API key.
	VerifyToken VerifyTokenFunc
	// IsPublic reports whether a procedure may be called without a
	// credential.
	IsPublic func(procedure string) bool
	// Check runs after a tenant credential is resolved; nil skips it.
	Check CheckFunc
	// UseFunc, when set, is told of every call an API key authenticated
	// (to record when keys were last used); it must not block.
	UseFunc func(p *tenancy.Principal)
	// PlatformKey is the operator's credential (QUARTERS_PLATFORM_KEY);
	// empty disables platform RPCs.
	PlatformKey string
	// FailFunc turns a failure to decide (the key lookup's or the token
	// check's error, such as an unreachable database; never a refusal)
	// into the error returned, and logs it as it sees fit. Nil: every such
	// failure is UNAVAILABLE and logged at error.
	FailFunc func(ctx context.Context, procedure string, err error) error
	Logger   *slog.Logger
	// HandlerOptions must be the options the Connect handlers use, so
	// errors are written in the caller's protocol and codec.
	HandlerOptions []connect.HandlerOption
}

// NewMiddleware returns HTTP middleware that authenticates every RPC before
// its body is read: "Authorization: Bearer <API key | access token>" is
// resolved to a tenancy.Principal stored in the request context (read it with
// FromContext). Missing credentials on non-public procedures, and
// malformed, unknown, revoked or expired keys or tokens, are
// UNAUTHENTICATED with one message per credential type, so the response
// reveals nothing about which keys exist or why a token failed.
func NewMiddleware(p MiddlewareParams) *authn.Middleware {
	return authn.NewMiddleware(func(ctx context.Context, r *http.Request) (any, error) {
		procedure, _ := authn.InferProcedure(r.URL)
		token, ok := authn.BearerToken(r)
		// "Bearer  qk_…" (a doubled space, a pasted newline) is still the
		// key: whitespace never belongs to a credential.
		token = strings.TrimSpace(token)
		if ok && token == "" {
			return nil, authn.Errorf("authorization header must be \"Bearer <API key or access token>\": the credential is empty")
		}
		if !ok {
			if r.Header.Get("Authorization") != "" {
				return nil, authn.Errorf("authorization header must be \"Bearer <API key or access token>\"")
			}
			if p.IsPublic(procedure) {
				return nil, nil
			}
			return nil, authn.Errorf("missing credential: send \"Authorization: Bearer <API key or access token>\"")
		}
		if p.PlatformKey != "" && subtle.ConstantTimeCompare([]byte(token), []byte(p.PlatformKey)) == 1 {
			return &tenancy.Principal{Platform: true}, nil
		}
		var (
			principal *tenancy.Principal
			err       error
		)
		fail := func(err error) error {
			if p.FailFunc != nil {
				return p.FailFunc(ctx, procedure, err)
			}
			p.Logger.ErrorContext(ctx, "credential check failed", "error", err)
			return errUnavailable()
		}
		if LooksLikeAPIKey(token) {
			principal, err = authenticate(ctx, p.Lookup, fail, token)
			if err == nil && p.UseFunc != nil {
				p.UseFunc(principal)
			}
		} else if looksLikeJWT(token) {
			principal, err = verifyToken(ctx, p.VerifyToken, p.Logger, fail, token)
		} else {
			return nil, authn.Errorf("malformed credential: expected an API key (qk_…) or an access token (JWT)")
		}
		if err != nil {
			return nil, err
		}
		if p.Check != nil {
			if err := p.Check(r, principal); err != nil {
				return nil, err
			}
		}
		// authn stores the returned value; FromContext reads it back.
		return principal, nil
	}, p.HandlerOptions...)
}

// looksLikeJWT reports whether token has a JWS compact serialisation's
// shape (three base64url segments, the first two non-empty), so that a
// token that could never be one is called malformed rather than
// "expired": the caller has the wrong thing, not a stale one.
func looksLikeJWT(token string) bool {
	if strings.Count(token, ".") != 2 {
		return false
	}
	parts := strings.Split(token, ".")
	if parts[0] == "" || parts[1] == "" {
		return false
	}
	for _, part := range parts {
		for _, c := range part {
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// errInvalidKey is one message for every kind of bad key: malformed,
// unknown, revoked and expired keys are indistinguishable to the caller.
func errInvalidKey() error { return authn.Errorf("invalid API key") }

// errInvalidToken is one message for every refused access token; the
// reason is logged, never sent.
func errInvalidToken() error {
	return authn.Errorf("invalid or expired access token: refresh it or sign in again")
}

// errUnavailable is the answer to a credential that could not be checked.
func errUnavailable() error {
	return connect.NewError(connect.CodeUnavailable, errors.New("authentication is temporarily unavailable; retry shortly"))
}

func verifyToken(ctx context.Context, verify VerifyTokenFunc, logger *slog.Logger, fail func(error) error, token string) (*tenancy.Principal, error) {
	if verify == nil {
		return nil, errInvalidToken()
	}
	principal, err := verify(ctx, token)
	if errors.Is(err, ErrInvalidToken) {
		logger.DebugContext(ctx, "access token refused", "reason", err.Error())
		return nil, errInvalidToken()
	}
	if err != nil {
		return nil, fail(fmt.Errorf("check access token: %w", err))
	}
	return principal, nil
}

func authenticate(ctx context.Context, lookup LookupFunc, fail func(error) error, token string) (*tenancy.Principal, error) {
	hash, err := ParseAPIKey(token)
	if err != nil {
		return nil, errInvalidKey()
	}
	rec, err := lookup(ctx, hash)
	if errors.Is(err, ErrUnknownKey) {
		return nil, errInvalidKey()
	}
	if err != nil {
		// The cause (a database error) is logged, never sent to the caller.
		return nil, fail(fmt.Errorf("look up api key: %w", err))
	}
	// The lookup matched on the hash already; comparing again in constant
	// time keeps the decision itself free of data-dependent timing.
	if subtle.ConstantTimeCompare(rec.SecretHash, hash[:]) != 1 {
		return nil, errInvalidKey()
	}
	return &rec.Principal, nil
}

// LookupIn is the LookupFunc reading d: the database's row becomes a
// Record, its not-found ErrUnknownKey.
func LookupIn(d *db.DB) LookupFunc {
	return func(ctx context.Context, hash [32]byte) (*Record, error) {
		row, err := d.LookupAPIKey(ctx, hash)
		if errors.Is(err, db.ErrNotFound) {
			return nil, ErrUnknownKey
		}
		if err != nil {
			return nil, err
		}
		return &Record{
			Principal: tenancy.Principal{
				TenantID: row.TenantID, TenantSlug: row.TenantSlug, TenantActive: row.TenantActive,
				Role: row.Role, KeyID: row.KeyID,
			},
			SecretHash: row.SecretHash,
			ExpireTime: row.ExpireTime,
		}, nil
	}
}
