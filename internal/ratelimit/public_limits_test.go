package ratelimit_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/observe"
	"github.com/quarters-dev/quarters/internal/ratelimit"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// fivePerHour is a per-address limit that does not refill during a test.
var fivePerHour = ratelimit.Limit{Rate: 5, Period: time.Hour, Burst: 5}

// guessesUntilRefused calls guess until the rate limit refuses it, and
// returns how many calls reached the password check (UNAUTHENTICATED).
func guessesUntilRefused(t *testing.T, max int, guess func(i int) error) int {
	t.Helper()
	for i := range max {
		err := guess(i)
		if connect.CodeOf(err) == connect.CodeResourceExhausted {
			retryInfo(t, apitest.RequireCode(t, err, connect.CodeResourceExhausted))
			return i
		}
		apitest.RequireCode(t, err, connect.CodeUnauthenticated)
	}
	t.Fatalf("no refusal in %d guesses", max)
	return 0
}

// limitedReplica returns a replica configured by opts that shares the
// database of an unlimited server, and signUp, which signs tenants up on
// the unlimited one and returns clients of the replica: SignUp signs the
// owner in, which would spend the very per-address and per-account
// budgets the tests count.
func limitedReplica(t *testing.T, opts *servertest.Opts) (*servertest.Server, func() *servertest.Tenant) {
	t.Helper()
	open := servertest.New(t)
	opts.Share = open
	s := servertest.NewWith(t, opts)
	return s, func() *servertest.Tenant {
		tn := open.SignUp(t)
		out := s.As(tn.ID, tn.Slug, tn.Key)
		out.OwnerEmail, out.Owner = tn.OwnerEmail, tn.Owner
		return out
	}
}

func wrongSignIn(c quartersv1connect.AuthServiceClient, tn *servertest.Tenant) error {
	_, err := c.SignIn(ctx, req(&quartersv1.SignInRequest{Email: tn.OwnerEmail, Password: "a wrong guess", Tenant: tn.Slug}))
	return err
}

// TestPublicLimitIgnoresCredential: the bypass. Sign-in guesses
// with a tenant's API key in Authorization are still charged to the
// client address's bucket for SignIn, exactly its burst, not to the
// tenant's far larger one; and they leave the tenant's bucket untouched.
func TestPublicLimitIgnoresCredential(t *testing.T) {
	t.Parallel()
	_, signUp := limitedReplica(t, &servertest.Opts{AnonymousLimit: fivePerHour})
	a := signUp()
	got := guessesUntilRefused(t, 100, func(int) error { return wrongSignIn(a.Auth, a) })
	require.Equal(t, 5, got, "the anonymous limit's burst, with an API key attached")

	_, err := a.Auth.SignIn(ctx, req(&quartersv1.SignInRequest{Email: a.OwnerEmail, Password: "a wrong guess", Tenant: a.Slug}))
	cerr := apitest.RequireCode(t, err, connect.CodeResourceExhausted)
	require.Contains(t, cerr.Message(), "5 requests per hour")
	require.NotContains(t, cerr.Message(), "plan", "the tenant's plan has nothing to do with it")

	resp, err := a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
	require.Equal(t, "19", resp.Header().Get("X-RateLimit-Remaining"), "the tenant's bucket saw none of the guesses")
}

// TestPublicLimitManyTenantKeys: keys of several (free, easily created)
// tenants do not multiply the guesses one address gets.
func TestPublicLimitManyTenantKeys(t *testing.T) {
	t.Parallel()
	s, signUp := limitedReplica(t, &servertest.Opts{AnonymousLimit: fivePerHour})
	victim := signUp()
	var keys []*servertest.Tenant
	for range 3 {
		keys = append(keys, signUp())
	}
	got := guessesUntilRefused(t, 100, func(i int) error {
		return wrongSignIn(keys[i%len(keys)].Auth, victim)
	})
	require.Equal(t, 5, got, "one bucket for the address, whatever key rides along")
	// And without any credential, the same bucket.
	apitest.RequireCode(t, wrongSignIn(s.As("", "", "").Auth, victim), connect.CodeResourceExhausted)
}

func trustLocal(t *testing.T) observe.TrustedProxies {
	t.Helper()
	p, err := observe.ParseTrustedProxies("127.0.0.1, ::1")
	require.NoError(t, err)
	return p
}

// from is an AuthService client whose calls arrive through a trusted
// proxy on behalf of the client at addr (X-Forwarded-For).
func from(s *servertest.Server, xff string) quartersv1connect.AuthServiceClient {
	return quartersv1connect.NewAuthServiceClient(s.HTTP, s.URL, connect.WithInterceptors(servertest.Header("X-Forwarded-For", xff)))
}

// TestSignInAccountLimit: guessing one account's password from many
// addresses is limited per account; the owner's familiar address keeps a
// bucket of its own, so the guessing does not lock them out; other
// accounts are unaffected; and the account is matched case-insensitively.
func TestSignInAccountLimit(t *testing.T) {
	t.Parallel()
	s, signUp := limitedReplica(t, &servertest.Opts{
		AccountLimit:   ratelimit.Limit{Rate: 3, Period: time.Hour, Burst: 3},
		TrustedProxies: trustLocal(t),
	})
	a, b := signUp(), signUp()
	signIn := func(addr string, tn *servertest.Tenant, email, pw string) error {
		_, err := from(s, addr).SignIn(ctx, req(&quartersv1.SignInRequest{Email: email, Password: pw, Tenant: tn.Slug}))
		return err
	}
	const home = "198.51.100.7"
	require.NoError(t, signIn(home, a, a.OwnerEmail, servertest.OwnerPassword), "the owner signs in from home")

	// Ten addresses, one guess each: the account's shared bucket (3, one
	// used by the owner's first sign-in from home) lets 2 through.
	got := guessesUntilRefused(t, 10, func(i int) error {
		return signIn(fmt.Sprintf("203.0.113.%d", i+1), a, a.OwnerEmail, "a wrong guess")
	})
	require.Equal(t, 2, got)
	err := signIn("203.0.113.99", a, a.OwnerEmail, servertest.OwnerPassword)
	cerr := apitest.RequireCode(t, err, connect.CodeResourceExhausted)
	require.Contains(t, cerr.Message(), "too many sign-in attempts for this account", "a right guess from a new address is refused unchecked")
	require.Positive(t, retryInfo(t, cerr).GetRetryDelay().AsDuration())
	apitest.RequireCode(t, signIn("2001:db8::1", a, "  "+strings.ToUpper(a.OwnerEmail)+" ", "a wrong guess"), connect.CodeResourceExhausted)

	for range 3 {
		require.NoError(t, signIn(home, a, a.OwnerEmail, servertest.OwnerPassword), "the owner at home is not locked out")
	}
	require.NoError(t, signIn("203.0.113.1", b, b.OwnerEmail, servertest.OwnerPassword), "another account is not affected")
}

// TestForwardedForTrust: X-Forwarded-For counts only from a trusted
// proxy, and then only its rightmost untrusted hop: a client cannot pick
// a fresh address per call by sending the header itself.
func TestForwardedForTrust(t *testing.T) {
	t.Parallel()
	t.Run("untrusted peer", func(t *testing.T) {
		t.Parallel()
		s, signUp := limitedReplica(t, &servertest.Opts{AnonymousLimit: fivePerHour})
		victim := signUp()
		got := guessesUntilRefused(t, 20, func(i int) error {
			return wrongSignIn(from(s, fmt.Sprintf("203.0.113.%d", i+1)), victim)
		})
		require.Equal(t, 5, got, "the header was believed from an untrusted peer")
	})
	t.Run("trusted proxy", func(t *testing.T) {
		t.Parallel()
		s, signUp := limitedReplica(t, &servertest.Opts{AnonymousLimit: fivePerHour, TrustedProxies: trustLocal(t)})
		victim := signUp()
		// The client forges the left part; the proxy appended its peer.
		got := guessesUntilRefused(t, 20, func(i int) error {
			return wrongSignIn(from(s, fmt.Sprintf("198.51.100.%d, 203.0.113.9", i+1)), victim)
		})
		require.Equal(t, 5, got, "a forged hop left of the proxy's was believed")
		// Another client behind the same proxy has its own bucket.
		apitest.RequireCode(t, wrongSignIn(from(s, "203.0.113.10"), victim), connect.CodeUnauthenticated)
	})
}
