package cost_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db/dbtest"
	"github.com/quarters-dev/quarters/internal/cost"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func pool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	appURL, _ := dbtest.NewURLs(t)
	cfg, err := pgxpool.ParseConfig(appURL)
	require.NoError(t, err)
	cfg.ConnConfig.Tracer = cost.Tracer{}
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

// TestMeterAddsStatementsAndBatches: every statement and batch run under
// a Meter adds its rows and time; statements outside it add nothing.
func TestMeterAddsStatementsAndBatches(t *testing.T) {
	t.Parallel()
	p := pool(t)
	meter := cost.WithMeter(context.Background())
	ctx := context.Context(meter)

	rows, err := p.Query(ctx, "select generate_series(1, 5)")
	require.NoError(t, err)
	n := 0
	for rows.Next() {
		n++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, 5, n)
	d, got := meter.Totals()
	require.Equal(t, int64(5), got)
	require.Positive(t, d)

	b := &pgx.Batch{}
	b.Queue("select generate_series(1, 2)")
	b.Queue("select generate_series(1, 3)")
	require.NoError(t, p.SendBatch(ctx, b).Close())
	d2, got := meter.Totals()
	require.Equal(t, int64(10), got, "a batch adds each statement's rows")
	require.Greater(t, d2, d, "and its time")

	_, err = p.Exec(context.Background(), "select generate_series(1, 7)")
	require.NoError(t, err)
	_, got = meter.Totals()
	require.Equal(t, int64(10), got, "a statement outside the meter's context is not counted")
}
