package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/quarters-dev/quarters/internal/apierr"
)

// DefaultFamiliarFor is how long an address stays familiar to an account
// after a successful sign-in from it.
const DefaultFamiliarFor = 30 * 24 * time.Hour

// AccountParams configure NewAccountInterceptor. Limiter, Limit,
// AccountFunc and ClientFunc are required.
type AccountParams struct {
	Limiter Limiter
	// Limit is one account's allowance: shared by every address that has
	// not signed in to it before, and again, separately, for each one that
	// has.
	Limit Limit
	// AccountFunc returns the account a call to procedure tries to
	// authenticate as, read from its request message (already normalised),
	// or false when the call is not limited per account.
	AccountFunc func(procedure string, msg any) (string, bool)
	// ClientFunc returns the caller's address (observe.ClientIP).
	ClientFunc func(ctx context.Context) string
	// FamiliarFor is how long a successful call makes its address familiar
	// to the account (default DefaultFamiliarFor).
	FamiliarFor time.Duration
	// Logger receives limiter failures, at most one line per ten seconds
	// (default slog.Default()).
	Logger *slog.Logger
}

// NewAccountInterceptor limits calls that try to authenticate as an
// account (SignIn) per account, across all client addresses: the
// per-address limit alone lets an attacker with many addresses guess one
// account's password as fast as they have addresses.
//
// A per-account limit invites the opposite attack: keeping the bucket
// empty to lock the real owner out. So the bucket is split by familiarity,
// as smart-lockout schemes do: an address from which a call for the
// account succeeded (the right password) within FamiliarFor gets a bucket
// of its own for that account, which guesses from elsewhere never touch.
// Guessing from unfamiliar addresses therefore costs the owner nothing on
// their usual devices and networks; only a first sign-in from a new
// address, while someone is hammering the account, has to wait (the
// refusal says how long: RetryInfo and Retry-After, as for the per-address
// limit). The account is hashed before it becomes a key, so the limiter's
// store holds no email addresses.
//
// A refused call fails with RESOURCE_EXHAUSTED before the handler runs,
// whatever the password: a right guess made while the account's bucket is
// empty is not even checked, so it teaches the guesser nothing. The limit
// applies to unary calls; it panics if a required parameter is missing.
func NewAccountInterceptor(p AccountParams) connect.Interceptor {
	if p.Limiter == nil || p.AccountFunc == nil || p.ClientFunc == nil {
		panic("ratelimit: NewAccountInterceptor needs a Limiter, an AccountFunc and a ClientFunc")
	}
	if err := validate(p.Limit, 1); err != nil {
		panic("ratelimit: NewAccountInterceptor: " + err.Error())
	}
	if p.FamiliarFor <= 0 {
		p.FamiliarFor = DefaultFamiliarFor
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	return &accountInterceptor{p: p, familiar: Limit{Rate: 1, Period: p.FamiliarFor, Burst: 1}}
}

type accountInterceptor struct {
	p        AccountParams
	familiar Limit
	logged   atomic.Int64 // unix nanoseconds of the last logged limiter error
}

func (a *accountInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		procedure := req.Spec().Procedure
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		account, ok := a.p.AccountFunc(procedure, req.Any())
		if !ok {
			return next(ctx, req)
		}
		sum := sha256.Sum256([]byte(account))
		id := procedure + ":" + hex.EncodeToString(sum[:16])
		client := a.p.ClientFunc(ctx)
		familiarKey := "familiar:" + id + ":" + client
		bucket := "account:" + id
		if a.isFamiliar(ctx, familiarKey) {
			bucket += ":" + client
		}
		res, err := a.p.Limiter.Allow(ctx, bucket, a.p.Limit, 1)
		if err != nil {
			// Fail open, as the per-address limit does: an unavailable
			// limiter must not become an unavailable sign-in.
			a.logError(ctx, procedure, err)
		} else if !res.Allowed {
			return nil, a.refuse(ctx, res)
		}
		resp, err := next(ctx, req)
		if err == nil {
			// Allow on a fresh key of burst 1 stores "used until now +
			// FamiliarFor"; on a key still familiar it is refused and
			// changes nothing, so familiarity runs from the first success
			// and is renewed by the first success after it lapses.
			if _, ferr := a.p.Limiter.Allow(ctx, familiarKey, a.familiar, 1); ferr != nil {
				a.logError(ctx, procedure, ferr)
			}
		}
		return resp, err
	}
}

// isFamiliar asks the limiter, without consuming anything, whether key's
// bucket holds a success: a cost above the burst is never allowed and
// changes nothing, and its ResetAfter is how long the key stays used.
func (a *accountInterceptor) isFamiliar(ctx context.Context, key string) bool {
	res, err := a.p.Limiter.Allow(ctx, key, a.familiar, a.familiar.Burst+1)
	return err == nil && res.ResetAfter > 0
}

func (a *accountInterceptor) refuse(ctx context.Context, r Result) error {
	wait := retryDelay(r)
	err := apierr.RetryAfter(connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
		"too many sign-in attempts for this account (%s from addresses it has not signed in from); retry in %ds",
		r.Limit, ceilSeconds(wait))), wait)
	secs := strconv.FormatInt(ceilSeconds(wait), 10)
	if info, ok := connect.CallInfoForHandlerContext(ctx); ok {
		info.ResponseHeader().Set(HeaderRetryAfter, secs)
	} else {
		err.Meta().Set(HeaderRetryAfter, secs)
	}
	return err
}

func (a *accountInterceptor) logError(ctx context.Context, procedure string, err error) {
	now := time.Now().UnixNano()
	last := a.logged.Load()
	if now-last < int64(10*time.Second) || !a.logged.CompareAndSwap(last, now) {
		return
	}
	if !errors.Is(err, context.Canceled) {
		a.p.Logger.ErrorContext(ctx, "account rate limiter failed; allowing the call", "procedure", procedure, "error", err)
	}
}

func (a *accountInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler passes streams through: their messages come after
// the stream opens, and no public RPC streams.
func (a *accountInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
