package router_test

import (
	"log/slog"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db/dbtest"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/server/auth"
	"github.com/quarters-dev/quarters/server/servertest"
)

// countMsgs counts log lines by message, and lines at level ERROR.
func countMsgs(t *testing.T, logs *syncBuffer) (map[string]int, int) {
	t.Helper()
	msgs, errs := map[string]int{}, 0
	for _, l := range logs.lines(t) {
		msg, _ := l["msg"].(string)
		msgs[msg]++
		if l["level"] == "ERROR" {
			errs++
		}
	}
	return msgs, errs
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
		cerr := requireCode(t, err, connect.CodeUnavailable)
		require.Contains(t, cerr.Message(), "unavailable", "call %d", i)
	}

	pg.Start()
	for attempt := 0; ; attempt++ {
		err := list(a)
		if err == nil {
			break
		}
		require.Less(t, attempt, 100, "never recovered: %v", err)
		requireCode(t, err, connect.CodeUnavailable) // broken pooled connections, until replaced
	}
	require.NoError(t, list(owner))

	msgs, errs := countMsgs(t, logs)
	require.Equal(t, 1, msgs["database unavailable: answering UNAVAILABLE; further failures are counted, not logged, until it answers again"], "%v", msgs)
	require.Equal(t, 1, msgs["database available again"], "%v", msgs)
	require.Zero(t, msgs["internal error"], "%v", msgs)
	require.LessOrEqual(t, errs, 2, "error lines: one per outage (a reminder at most), not one per call: %v", msgs)
}
