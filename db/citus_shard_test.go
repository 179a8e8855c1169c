package db_test

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/db/dbtest"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
)

// TestShardOperationsNeedCitus: on plain PostgreSQL the shard operations
// say so instead of failing obscurely.
func TestShardOperationsNeedCitus(t *testing.T) {
	dbtest.SkipOnCitus(t, "tests the plain-PostgreSQL refusal")
	t.Parallel()
	f := newFixture(t)
	_, err := f.db.IsolateTenant(ctx, f.a)
	require.ErrorIs(t, err, db.ErrNoCitus)
	_, err = f.db.MoveTenant(ctx, f.a, "127.0.0.1", 5432)
	require.ErrorIs(t, err, db.ErrNoCitus)
}

// TestCitusIsolateAndMoveOnline: while both tenants' calls (writes and
// reads) run without pause, tenant A gets shards of its own and then moves
// to the other worker. No call fails, no write is lost, and A's rows end
// on the target node alone while B's stay where they were.
func TestCitusIsolateAndMoveOnline(t *testing.T) {
	dbtest.RequireCitus(t)
	t.Parallel()
	f := newFixture(t)
	// A pool with room for the callers and the operation, so no call
	// waits for a connection the operation holds.
	d, err := db.Open(ctx, f.appURL, &db.OpenOpts{MaxConns: 8})
	require.NoError(t, err)
	t.Cleanup(d.Close)
	f.db = d
	owner, err := pgx.Connect(ctx, f.ownerURL)
	require.NoError(t, err)
	defer owner.Close(ctx)

	placement := func(id uuid.UUID) (shard int64, node string, alone bool) {
		var host string
		var port int
		require.NoError(t, owner.QueryRow(ctx, `
SELECT s.shardid, n.nodename, n.nodeport, s.shardminvalue = s.shardmaxvalue
FROM pg_dist_shard s JOIN pg_dist_placement p ON p.shardid = s.shardid JOIN pg_dist_node n ON n.groupid = p.groupid
WHERE s.shardid = get_shard_id_for_distribution_column('projects', $1::uuid)`, id).Scan(&shard, &host, &port, &alone))
		return shard, net.JoinHostPort(host, strconv.Itoa(port)), alone
	}
	_, bNode, _ := placement(f.b)

	var (
		stop    atomic.Bool
		calls   atomic.Int64
		errs    atomic.Int64
		firstMu sync.Mutex
		first   error
		wg      sync.WaitGroup
		written [2][]uuid.UUID
	)
	for i, id := range []uuid.UUID{f.a, f.b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !stop.Load() || n < 3; n++ {
				err := f.db.InTenant(as(id), func(q *dbsqlc.Queries) error {
					p, err := q.ProjectInsert(ctx, dbsqlc.ProjectInsertParams{TenantID: id, Name: fmt.Sprint("p", n)})
					if err != nil {
						return err
					}
					written[i] = append(written[i], p.ID)
					if _, err := q.ProjectGet(ctx, dbsqlc.ProjectGetParams{TenantID: id, ID: p.ID}); err != nil {
						return err
					}
					_, err = q.ProjectList(ctx, dbsqlc.ProjectListParams{TenantID: id, BeforeTime: maxTime, BeforeID: uuid.Max, PageLimit: 5})
					return err
				})
				calls.Add(1)
				if err != nil {
					errs.Add(1)
					firstMu.Lock()
					if first == nil {
						first = err
					}
					firstMu.Unlock()
				}
			}
		}()
	}

	shard, err := f.db.IsolateTenant(ctx, f.a)
	require.NoError(t, err)
	_, aNode, alone := placement(f.a)
	require.True(t, alone, "A alone in its projects shard (colocated tables follow)")
	again, err := f.db.IsolateTenant(ctx, f.a)
	require.NoError(t, err)
	require.Equal(t, shard, again, "isolating again changes nothing")

	workers := dbtest.CitusWorkers(t)
	require.Len(t, workers, 2)
	target := workers[0]
	if target == aNode {
		target = workers[1]
	}
	host, portStr, _ := net.SplitHostPort(target)
	port, _ := strconv.Atoi(portStr)
	moved, err := f.db.MoveTenant(ctx, f.a, host, port)
	require.NoError(t, err)
	require.True(t, moved)
	_, aNode, _ = placement(f.a)
	require.Equal(t, target, aNode, "A's shard on the target worker")
	moved, err = f.db.MoveTenant(ctx, f.a, host, port)
	require.NoError(t, err)
	require.False(t, moved, "already there")

	stop.Store(true)
	wg.Wait()
	require.Zero(t, errs.Load(), "calls failed during the shard operations (of %d); first: %v", calls.Load(), first)
	_, bNodeAfter, bAlone := placement(f.b)
	require.Equal(t, bNode, bNodeAfter, "B stays")
	require.False(t, bAlone)

	// Every write made during the operations is there, and only the
	// writer's tenant sees it.
	for i, id := range []uuid.UUID{f.a, f.b} {
		rows, err := db.InTenantV(as(id), f.db, func(q *dbsqlc.Queries) ([]dbsqlc.Project, error) {
			return q.ProjectList(ctx, dbsqlc.ProjectListParams{TenantID: id, BeforeTime: maxTime, BeforeID: uuid.Max, PageLimit: 100000})
		})
		require.NoError(t, err)
		require.Len(t, rows, len(written[i])+1, "tenant %d's projects", i)
	}

	// Errors a caller can act on.
	_, err = f.db.IsolateTenant(ctx, uuid.New())
	require.ErrorIs(t, err, db.ErrNotFound)
	_, err = f.db.MoveTenant(ctx, f.a, "127.0.0.1", 1)
	var ni *db.ErrNotIsolatable
	require.ErrorAs(t, err, &ni)
	require.Contains(t, ni.Msg, "not an active worker")
	// Not from inside a tenant's transaction.
	err = f.db.ActAsTx(ctx, f.a, func(_ *dbsqlc.Queries, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT app.citus_tenant_isolate($1)", f.b)
		return err
	})
	require.ErrorContains(t, err, "outside a tenant")
}
