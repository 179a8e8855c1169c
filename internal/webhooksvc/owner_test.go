package webhooksvc_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/internal/servertest"
)

// ownerRow runs one query as the database owner, past row-level
// security, to check what the API cannot show.
func ownerRow(t *testing.T, s *servertest.Server, sql string, args ...any) pgx.Row {
	t.Helper()
	conn, err := pgx.Connect(ctx, s.OwnerURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx) })
	return conn.QueryRow(ctx, sql, args...)
}
