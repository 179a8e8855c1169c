package router_test

import (
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db/dbtest"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/redistest"
	"github.com/quarters-dev/quarters/internal/servertest"
	"github.com/quarters-dev/quarters/internal/tenant"
)

// countMsgs counts log lines by message, and lines at level ERROR.
func countMsgs(t *testing.T, logs *syncBuffer) (map[string]int, int) {
	msgs, errs, _ := countMsgsRiver(t, logs)
	return msgs, errs
}

// countMsgsRiver is countMsgs with River's error lines (tagged
// component=river) counted apart: River retries its own listener and
// completer with backoff, so their lines follow time, not calls.
func countMsgsRiver(t *testing.T, logs *syncBuffer) (msgs map[string]int, errs, riverErrs int) {
	t.Helper()
	msgs = map[string]int{}
	for _, l := range logs.lines(t) {
		msg, _ := l["msg"].(string)
		msgs[msg]++
		switch {
		case l["level"] != "ERROR":
		case l["component"] == "river":
			riverErrs++
		default:
			errs++
		}
	}
	return msgs, errs, riverErrs
}

// TestDatabaseOutage: with PostgreSQL stopped, calls whose credential is
// cached (and those whose credential needs the database) are UNAVAILABLE,
// which clients retry, not INTERNAL; the outage is logged once, however
// many calls fail, and once more when the database is back, after which
// calls succeed again by themselves.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	pg := dbtest.NewPrivate(t)
	logs := &syncBuffer{}
	s := servertest.NewWith(t, &servertest.Opts{Database: pg, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	a := s.SignUp(t)
	s.Unthrottle(t, a.ID)
	list := func(tn *servertest.Tenant) error {
		_, err := tn.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
		return err
	}
	require.NoError(t, list(a), "the API key and the tenant are cached now")
	owner := s.AsUser(a.Owner)
	require.NoError(t, list(owner))
	unknown, _, _ := auth.NewAPIKey() // well-formed, never stored: needs a lookup

	pg.Stop()
	const calls = 30
	for i := range calls {
		var err error
		switch i % 3 {
		case 0:
			err = list(a)
		case 1:
			err = list(owner)
		case 2:
			err = list(s.As(a.ID, a.Slug, unknown))
		}
		cerr := apitest.RequireCode(t, err, connect.CodeUnavailable)
		require.Contains(t, cerr.Message(), "unavailable", "call %d", i)
	}

	pg.Start()
	for attempt := 0; ; attempt++ {
		err := list(a)
		if err == nil {
			break
		}
		require.Less(t, attempt, 100, "never recovered: %v", err)
		apitest.RequireCode(t, err, connect.CodeUnavailable) // broken pooled connections, until replaced
	}
	require.NoError(t, list(owner))

	msgs, errs, riverErrs := countMsgsRiver(t, logs)
	// River logs its own retries by the clock (listener, completer,
	// maintenance), so their number follows the outage's length; it must
	// not follow the calls.
	require.Less(t, riverErrs, msgs["call"]/2, "River's lines follow its backoff, not the calls: %v", msgs)
	require.Equal(t, 1, msgs["database unavailable: answering UNAVAILABLE; further failures are counted, not logged, until it answers again"], "%v", msgs)
	require.Equal(t, 1, msgs["database available again"], "%v", msgs)
	require.Zero(t, msgs["internal error"], "%v", msgs)
	require.LessOrEqual(t, errs, 2, "error lines: one per outage (a reminder at most), not one per call: %v", msgs)
}

// waitFor polls cond every 10ms, failing the test with msg after 20s: for
// background state (a subscription) the test cannot wait on directly.
func waitFor(t *testing.T, msg string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline), msg)
	}
}

// TestRedisOutageCache: with Redis stopped mid-test, a replica keeps
// serving from its cached records instead of dropping them all every
// 100ms (the loader is not called per request); a key revoked meanwhile is
// revoked at once on this replica and the answer says how long others may
// lag; the outage is a bounded number of log lines; when Redis is back,
// everything is dropped exactly once and the revocation reaches the other
// replica.
func TestRedisOutageCache(t *testing.T) {
	t.Parallel()
	rs := redistest.New(t)
	logs := &syncBuffer{}
	s1 := servertest.NewWith(t, &servertest.Opts{Redis: rs.Options(), Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	s2 := servertest.NewWith(t, &servertest.Opts{Redis: rs.Options(), Share: s1})
	a := s1.SignUp(t)
	s1.Unthrottle(t, a.ID)
	_, secret := apitest.CreateKey(t, a, "ci", quartersv1.Role_ROLE_MEMBER)
	k, doomed := apitest.CreateKey(t, a, "doomed", quartersv1.Role_ROLE_MEMBER)
	list := func(s *servertest.Server, key string) error {
		_, err := s.As(a.ID, a.Slug, key).Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
		return err
	}
	waitFor(t, "never subscribed", func() bool { return s1.Tenants.Shared() && s2.Tenants.Shared() })
	for _, s := range []*servertest.Server{s1, s2} {
		for _, key := range []string{secret, doomed} {
			require.NoError(t, list(s, key)) // cached on both replicas
		}
	}
	var dropsAll atomic.Int64
	s1.Tenants.OnDrop(func(id uuid.UUID) {
		if id == uuid.Nil {
			dropsAll.Add(1)
		}
	})
	loads := s1.TenantLoads()

	rs.Stop()
	waitFor(t, "replica 1 never noticed the outage", func() bool { return !s1.Tenants.Shared() })
	for range 100 {
		require.NoError(t, list(s1, secret))
		time.Sleep(2 * time.Millisecond) // long enough, in all, for the old 100ms drops
	}
	require.LessOrEqual(t, s1.TenantLoads()-loads, int64(1), "the tenant was reloaded during the outage: records were dropped")
	require.Zero(t, dropsAll.Load(), "the outage dropped every cached record")

	// Revoking a key during the outage: saved, refused here at once, and
	// the answer says other replicas may accept it for up to a minute.
	resp, err := a.Auth.RevokeApiKey(ctx, req(&quartersv1.RevokeApiKeyRequest{Id: k.GetId()}))
	require.NoError(t, err)
	require.Equal(t, "60", resp.Header().Get(tenant.HeaderPropagationDelay))
	apitest.RequireCode(t, list(s1, doomed), connect.CodeUnauthenticated)

	rs.Start()
	waitFor(t, "replica 1 never resubscribed", s1.Tenants.Shared)
	waitFor(t, "replica 2 never resubscribed", s2.Tenants.Shared)
	require.Equal(t, int64(1), dropsAll.Load(), "recovery drops everything exactly once")
	apitest.RequireCode(t, list(s2, doomed), connect.CodeUnauthenticated)
	require.NoError(t, list(s2, secret))

	// With Redis up again, revocations reach other replicas at once and
	// the answer carries no warning.
	k2, doomed2 := apitest.CreateKey(t, a, "doomed too", quartersv1.Role_ROLE_MEMBER)
	require.NoError(t, list(s2, doomed2))
	resp, err = a.Auth.RevokeApiKey(ctx, req(&quartersv1.RevokeApiKeyRequest{Id: k2.GetId()}))
	require.NoError(t, err)
	require.Empty(t, resp.Header().Get(tenant.HeaderPropagationDelay))
	waitFor(t, "replica 2 still accepts the key revoked after recovery", func() bool {
		return connect.CodeOf(list(s2, doomed2)) == connect.CodeUnauthenticated
	})

	msgs := map[string]int{}
	for _, l := range logs.lines(t) {
		if l["msg"] != "call" {
			msgs[l["msg"].(string)]++
		}
	}
	require.Equal(t, 1, msgs["tenant cache: redis subscription lost; serving cached records, each reloaded from the database when its TTL ends, and retrying quietly"], "%v", msgs)
	require.Equal(t, 1, msgs["tenant cache: redis subscription restored; dropped every cached record once"], "%v", msgs)
	total := 0
	for _, n := range msgs {
		total += n
	}
	require.LessOrEqual(t, total, 8, "log lines besides calls: a few per outage, not per call: %v", msgs)
}
