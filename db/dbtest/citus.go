package dbtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/db/embedded"
)

// CitusEnv is the environment variable that runs the tests on Citus:
// with QUARTERS_TEST_CITUS=1 every test binary starts a coordinator and
// two workers (private clusters with Citus preloaded, listening on
// 127.0.0.1), and NewURLs' databases are Citus databases whose tenant
// tables are distributed (db.MigrateCitus). Citus must be installed
// (.ci/citus-install).
const CitusEnv = "QUARTERS_TEST_CITUS"

// citusShardCount keeps the test clusters small: every per-test database
// has this many shards per tenant table, spread over the two workers.
const citusShardCount = 4

// Citus reports whether the tests run on Citus (QUARTERS_TEST_CITUS=1).
func Citus() bool { return os.Getenv(CitusEnv) == "1" }

// RequireCitus skips t, saying why, unless the tests run on Citus.
func RequireCitus(t testing.TB) {
	t.Helper()
	if !Citus() {
		t.Skipf("needs Citus: set %s=1 (Citus installed, see .ci/citus-install)", CitusEnv)
	}
}

// SkipOnCitus skips t on Citus, with the reason: for the few tests of
// behaviour a distributed database does not have.
func SkipOnCitus(t testing.TB, why string) {
	t.Helper()
	if Citus() {
		t.Skipf("not on Citus: %s", why)
	}
}

// CitusWorkers returns the workers' addresses (host:port) as the
// coordinator's metadata names them, for shard moves. It fails t unless
// the tests run on Citus.
func CitusWorkers(t testing.TB) []string {
	t.Helper()
	RequireCitus(t)
	c := get(t)
	var out []string
	for _, n := range c.citusNodes[1:] {
		out = append(out, net.JoinHostPort("127.0.0.1", strconv.Itoa(n.TCPPort())))
	}
	return out
}

// citusSettings are every node's: Citus preloaded; prepared transactions
// for its two-phase commits; logical WAL for online shard moves; room for
// the connections parallel tests and Citus's own executors open.
var citusSettings = []string{
	"shared_preload_libraries=citus",
	"max_prepared_transactions=200",
	"wal_level=logical",
	"max_connections=300",
	"max_replication_slots=20",
	"max_wal_senders=20",
	"citus.max_cached_conns_per_worker=2",
	// Nodes talk over 127.0.0.1 without TLS (the servers have no
	// certificates); libpq would otherwise look for client certificates
	// in $HOME/.postgresql, which is root's when the tests run as root.
	"citus.node_conninfo=sslmode=disable",
	// Debian's PostgreSQL 15.20 admits only listed logical decoding
	// output plugins; Citus's shard moves and splits decode with its own.
	"output_plugin_libraries=pgoutput,test_decoding,citus,citus_pgoutput",
	// The template database must stay quiet while it is copied.
	"citus.enable_create_database_propagation=off",
}

// setupCitus starts the coordinator and workers, builds the template on
// each, joins the nodes and converts the coordinator's template.
func (c *cluster) setupCitus(ctx context.Context) error {
	if os.Getenv("DATABASE_URL") != "" {
		return fmt.Errorf("%s=1 starts its own Citus clusters; unset DATABASE_URL", CitusEnv)
	}
	for i := range 3 {
		var (
			e   *embedded.Cluster
			dir string
			err error
		)
		// The free port may be taken again before the server binds
		// it (another test binary starting its nodes): try another.
		for attempt := 0; attempt < 3; attempt++ {
			var port int
			if port, err = freePort(); err != nil {
				return err
			}
			if dir, err = os.MkdirTemp("", "qcitus"); err != nil {
				return err
			}
			e, err = embedded.Start(ctx, embedded.Opts{DataDir: dir, Ephemeral: true, TCPPort: port, Settings: citusSettings})
			if err == nil {
				break
			}
			os.RemoveAll(dir)
		}
		if err != nil {
			return fmt.Errorf("citus node %d: %w (is Citus installed? .ci/citus-install)", i, err)
		}
		c.citusNodes = append(c.citusNodes, e)
		c.citusDirs = append(c.citusDirs, dir)
		cfg, err := pgxpool.ParseConfig(e.OwnerURL("postgres"))
		if err != nil {
			return err
		}
		cfg.MaxConns = 4
		admin, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			return fmt.Errorf("citus node %d: admin connection: %w", i, err)
		}
		c.citusAdmins = append(c.citusAdmins, admin)
	}
	c.private, c.admin = c.citusNodes[0], c.citusAdmins[0]
	c.copyOpts = " STRATEGY FILE_COPY"

	tpl := "quarters_tpl_" + randomHex()
	for i, a := range c.citusAdmins {
		if _, err := a.Exec(ctx, "CREATE DATABASE "+ident(tpl)); err != nil {
			return fmt.Errorf("citus node %d: create template database: %w", i, err)
		}
	}
	c.template = tpl
	for i, n := range c.citusNodes {
		if err := execOn(ctx, n.OwnerURL(tpl), "CREATE EXTENSION citus"); err != nil {
			return fmt.Errorf("citus node %d: %w", i, err)
		}
	}
	join := []string{fmt.Sprintf("SELECT citus_set_coordinator_host('127.0.0.1', %d)", c.citusNodes[0].TCPPort())}
	for _, w := range c.citusNodes[1:] {
		join = append(join, fmt.Sprintf("SELECT citus_add_node('127.0.0.1', %d)", w.TCPPort()))
	}
	if err := execOn(ctx, c.ownerURL(tpl), join...); err != nil {
		return err
	}
	if err := db.Migrate(ctx, c.ownerURL(tpl)); err != nil {
		return fmt.Errorf("migrate template database: %w", err)
	}
	if err := db.MigrateCitus(ctx, c.ownerURL(tpl), &db.CitusOpts{ShardCount: citusShardCount}); err != nil {
		return fmt.Errorf("citus migrate template database: %w", err)
	}
	for i, a := range c.citusAdmins {
		if _, err := a.Exec(ctx, "ALTER DATABASE "+ident(tpl)+" WITH ALLOW_CONNECTIONS false"); err != nil {
			return fmt.Errorf("citus node %d: lock template database: %w", i, err)
		}
	}
	return nil
}

// createCitus copies the template into database name on every node: the
// copies together are a Citus database, since each node's copy holds the
// same metadata and shards. Citus's maintenance daemon keeps a session in
// each Citus database; on the template it is ended first (no connections
// are allowed there, so nothing starts another).
func (c *cluster) createCitus(ctx context.Context, name string) error {
	for i, a := range c.citusAdmins {
		var err error
		for attempt := 0; attempt < 5; attempt++ {
			if _, err = a.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", c.template); err != nil {
				break
			}
			_, err = a.Exec(ctx, "CREATE DATABASE "+ident(name)+" TEMPLATE "+ident(c.template)+c.copyOpts)
			if err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("citus node %d: %w", i, err)
		}
	}
	return nil
}

// dropCitus drops database name on every node.
func (c *cluster) dropCitus(ctx context.Context, name string) error {
	var errs []error
	for i, a := range c.citusAdmins {
		var err error
		for attempt := 0; attempt < 20; attempt++ {
			if _, err = a.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err == nil {
				break
			}
			// FORCE does not end prepared transactions: a test
			// that ended mid-commit leaves Citus's two-phase
			// commit to its recovery, which a dropped database
			// never runs. Roll them back (from inside the
			// database, as ROLLBACK PREPARED requires).
			var gids []string
			rows, qerr := a.Query(ctx, "SELECT gid FROM pg_prepared_xacts WHERE database = $1", name)
			if qerr == nil {
				for rows.Next() {
					var g string
					if rows.Scan(&g) == nil {
						gids = append(gids, g)
					}
				}
				rows.Close()
			}
			for _, g := range gids {
				_ = execOn(ctx, c.citusNodes[i].OwnerURL(name), "ROLLBACK PREPARED "+quoteLiteral(g))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("citus node %d: drop database %s: %w", i, name, err))
		}
	}
	return errors.Join(errs...)
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// teardownCitus stops every node.
func (c *cluster) teardownCitus(ctx context.Context) error {
	var errs []error
	for _, a := range c.citusAdmins {
		a.Close()
	}
	for i, n := range c.citusNodes {
		if err := n.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop citus node %d: %w", i, err))
		}
	}
	for _, d := range c.citusDirs {
		os.RemoveAll(d)
	}
	return errors.Join(errs...)
}

// execOn runs statements in one connection to url.
func execOn(ctx context.Context, url string, stmts ...string) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	for _, s := range stmts {
		if _, err := pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}
