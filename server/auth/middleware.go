package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"

	"connectrpc.com/authn"
	"connectrpc.com/connect"
)

// ErrUnknownKey is what a LookupFunc returns when no live key has the hash.
var ErrUnknownKey = errors.New("unknown API key")

// Record is what a LookupFunc finds for a key hash.
type Record struct {
	Principal
	// SecretHash is the stored hash, compared again in constant time.
	SecretHash []byte
}

// LookupFunc finds the live API key stored under hash. It returns
// ErrUnknownKey when there is none (never stored, revoked or expired).
type LookupFunc func(ctx context.Context, hash [32]byte) (*Record, error)

// CheckFunc vets an authenticated principal against the HTTP request, e.g.
// that a tenant selector (subdomain, X-Tenant-ID) agrees with it. Its error
// is returned to the caller as is.
type CheckFunc func(r *http.Request, p *Principal) error

// MiddlewareParams are NewMiddleware's inputs.
type MiddlewareParams struct {
	Lookup LookupFunc
	// IsPublic reports whether a procedure may be called without a
	// credential.
	IsPublic func(procedure string) bool
	// Check runs after a tenant credential is resolved; nil skips it.
	Check CheckFunc
	// UseFunc, when set, is told of every call an API key authenticated
	// (to record when keys were last used); it must not block.
	UseFunc func(p *Principal)
	// PlatformKey is the operator's credential (QUARTERS_PLATFORM_KEY);
	// empty disables platform RPCs.
	PlatformKey string
	Logger      *slog.Logger
	// HandlerOptions must be the options the Connect handlers use, so
	// errors are written in the caller's protocol and codec.
	HandlerOptions []connect.HandlerOption
}

// NewMiddleware returns HTTP middleware that authenticates every RPC before
// its body is read: "Authorization: Bearer <API key>" is resolved to a
// Principal stored in the request context (read it with FromContext).
// Missing credentials on non-public procedures, and malformed, unknown,
// revoked or expired keys, are UNAUTHENTICATED with the same message for
// every kind of bad key, so the response reveals nothing about which keys
// exist.
func NewMiddleware(p MiddlewareParams) *authn.Middleware {
	return authn.NewMiddleware(func(ctx context.Context, r *http.Request) (any, error) {
		procedure, _ := authn.InferProcedure(r.URL)
		token, ok := authn.BearerToken(r)
		if !ok {
			if r.Header.Get("Authorization") != "" {
				return nil, authn.Errorf("authorization header must be \"Bearer <API key>\"")
			}
			if p.IsPublic(procedure) {
				return nil, nil
			}
			return nil, authn.Errorf("missing credential: send \"Authorization: Bearer <API key>\"")
		}
		if p.PlatformKey != "" && subtle.ConstantTimeCompare([]byte(token), []byte(p.PlatformKey)) == 1 {
			return &Principal{Platform: true}, nil
		}
		principal, err := authenticate(ctx, p.Lookup, p.Logger, token)
		if err != nil {
			return nil, err
		}
		if p.UseFunc != nil {
			p.UseFunc(principal)
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

// errInvalidKey is one message for every kind of bad key: malformed,
// unknown, revoked and expired keys are indistinguishable to the caller.
func errInvalidKey() error { return authn.Errorf("invalid API key") }

func authenticate(ctx context.Context, lookup LookupFunc, logger *slog.Logger, token string) (*Principal, error) {
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
		logger.ErrorContext(ctx, "api key lookup failed", "error", err)
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("authentication is temporarily unavailable; retry shortly"))
	}
	// The lookup matched on the hash already; comparing again in constant
	// time keeps the decision itself free of data-dependent timing.
	if subtle.ConstantTimeCompare(rec.SecretHash, hash[:]) != 1 {
		return nil, errInvalidKey()
	}
	return &rec.Principal, nil
}
