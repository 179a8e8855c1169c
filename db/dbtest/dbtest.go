// Package dbtest gives each test a fresh, migrated database connected as the
// app role. Import it only from _test.go files, and give every package that
// uses it a TestMain:
//
//	func TestMain(m *testing.M) { dbtest.Main(m) }
//
// With DATABASE_URL set, databases are created on that server; its role
// must be able to CREATE DATABASE and CREATE ROLE (a superuser is simplest),
// and quarters_app must be able to log in without a password (trust
// authentication). Otherwise each test binary starts its own throwaway
// cluster from the locally installed PostgreSQL binaries; without them
// tests fail, saying what to install.
//
// Migrations run once per test binary, into a template database; each
// test's database is a copy of it, which takes tens of milliseconds, so
// tests can have as many as they like and run in parallel.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/db/embedded"
)

const (
	appRole      = "quarters_app"
	setupTimeout = 2 * time.Minute
	opTimeout    = 30 * time.Second
)

// cluster is the server the test databases live on, shared by every test
// in the binary.
type cluster struct {
	private  *embedded.Cluster // private cluster; nil with DATABASE_URL
	dataDir  string            // the private cluster's directory
	base     *url.URL          // DATABASE_URL, parsed; nil for a private cluster
	admin    *pgxpool.Pool
	template string // name of the migrated template; "" until created
	// copyOpts ends CREATE DATABASE ... TEMPLATE; see setup.
	copyOpts string

	// With QUARTERS_TEST_CITUS=1 (citus.go): the coordinator, then the
	// workers, their directories and admin pools. private and admin are
	// then the coordinator's.
	citusNodes  []*embedded.Cluster
	citusDirs   []string
	citusAdmins []*pgxpool.Pool
}

var (
	mainRunning atomic.Bool
	setupOnce   sync.Once
	shared      *cluster
	setupErr    error

	// createMu serialises CREATE DATABASE ... TEMPLATE: PostgreSQL
	// refuses to copy a database that other sessions are in, and a copy
	// in progress counts as one.
	createMu sync.Mutex

	teardownOnce sync.Once
)

// Main runs the tests and then removes what dbtest created: it stops the
// private cluster if one was started, or drops the template database on a
// DATABASE_URL server. Call it from TestMain. It does not return.
func Main(m *testing.M) {
	mainRunning.Store(true)
	// The private cluster's postmaster runs in its own session, so an
	// interrupted `go test` would leave it running; stop it on the way
	// out. (A panic or -timeout still leaks it, as the process dies
	// without running any of our code.)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "dbtest: %v: cleaning up\n", sig)
		teardown()
		os.Exit(1)
	}()

	code := m.Run()
	if err := teardown(); err != nil {
		fmt.Fprintf(os.Stderr, "dbtest: cleanup: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// NewURLs creates a database cloned from the migrated template and returns
// URLs for it: appURL connects as quarters_app, ownerURL as the role that
// owns the schema (for setting up fixtures behind row-level security's
// back). The database is dropped when the test ends.
func NewURLs(t testing.TB) (appURL, ownerURL string) {
	t.Helper()
	c := get(t)
	name := "t_" + randomHex()

	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	createMu.Lock()
	var err error
	if c.citusNodes != nil {
		err = c.createCitus(ctx, name)
	} else {
		_, err = c.admin.Exec(ctx, "CREATE DATABASE "+ident(name)+" TEMPLATE "+ident(c.template)+c.copyOpts)
	}
	createMu.Unlock()
	if err != nil {
		t.Fatalf("dbtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if c.citusNodes != nil {
			if err := c.dropCitus(ctx, name); err != nil {
				t.Errorf("dbtest: %v", err)
			}
			return
		}
		// FORCE ends sessions a test left open (a pool not yet
		// closed, a leaked connection) instead of failing.
		if _, err := c.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
			t.Errorf("dbtest: drop database %s: %v", name, err)
		}
	})
	return c.appURL(name), c.ownerURL(name)
}

// NewPool returns a pool connected as quarters_app to a fresh database from
// NewURLs. The pool is closed, and the database dropped, when the test
// ends.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	appURL, _ := NewURLs(t)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	pool, err := pgxpool.New(ctx, appURL)
	if err != nil {
		t.Fatalf("dbtest: pool: %v", err)
	}
	// Registered after NewURLs' cleanup, so it runs before the drop.
	t.Cleanup(pool.Close)
	// pgxpool connects lazily; fail here, not in the test's first query.
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("dbtest: connect as %s: %v", appRole, err)
	}
	return pool
}

// get returns the shared cluster, setting it up on first use.
func get(t testing.TB) *cluster {
	t.Helper()
	if !mainRunning.Load() {
		// Without Main nothing would stop the private cluster or drop
		// the template.
		t.Fatal("dbtest: this package needs func TestMain(m *testing.M) { dbtest.Main(m) }")
	}
	setupOnce.Do(func() {
		shared = &cluster{}
		setupErr = shared.setup()
	})
	if setupErr != nil {
		t.Fatalf("dbtest: %v", setupErr)
	}
	if shared == nil {
		t.Fatal("dbtest: shutting down") // teardown ran first (interrupted)
	}
	return shared
}

// setup connects to (or starts) the server and builds the template. On
// error, what was already set up stays recorded for teardown.
func (c *cluster) setup() error {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	if Citus() {
		return c.setupCitus(ctx)
	}
	adminURL := ""
	if raw := os.Getenv("DATABASE_URL"); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return errors.New("DATABASE_URL must be a postgres:// URL for a role that can create databases")
		}
		c.base = u
		adminURL = raw
	} else {
		// Not t.TempDir(): when tests run as root, the postgres
		// account must be able to reach the directory, and
		// t.TempDir's parents are 0700.
		dir, err := os.MkdirTemp("", "qpgtest")
		if err != nil {
			return err
		}
		e, err := embedded.Start(ctx, embedded.Opts{DataDir: dir, Ephemeral: true})
		if err != nil {
			os.RemoveAll(dir)
			// With ErrNoPostgres this says what to install; the
			// tests fail rather than skip, so a machine without
			// PostgreSQL cannot pass them by accident.
			return err
		}
		c.private, c.dataDir = e, dir
		adminURL = e.OwnerURL("postgres")
		// PostgreSQL 15 copies a database block by block through
		// shared buffers and the WAL by default; copying the files
		// is about twice as fast (tens of milliseconds) at the price
		// of two checkpoints per copy, which cost nothing with
		// fsync off. A DATABASE_URL server may be older than 15 and
		// is not ours to checkpoint, so it keeps its default.
		c.copyOpts = " STRATEGY FILE_COPY"
	}

	cfg, err := pgxpool.ParseConfig(adminURL)
	if err != nil {
		return fmt.Errorf("admin connection: %w", err)
	}
	cfg.MaxConns = 4
	if c.admin, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return fmt.Errorf("admin connection: %w", err)
	}

	tpl := "quarters_tpl_" + randomHex()
	if _, err := c.admin.Exec(ctx, "CREATE DATABASE "+ident(tpl)); err != nil {
		return fmt.Errorf("create template database: %w", err)
	}
	c.template = tpl
	// Migrate closes its connection when done, so nothing is left in
	// the template to stop it being copied.
	if err := db.Migrate(ctx, c.ownerURL(tpl)); err != nil {
		return fmt.Errorf("migrate template database: %w", err)
	}
	// From now on nobody may connect to the template: a stray session
	// (a test given the wrong URL, say) would make every copy fail.
	if _, err := c.admin.Exec(ctx, "ALTER DATABASE "+ident(tpl)+" WITH ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("lock template database: %w", err)
	}
	return nil
}

// teardown undoes setup; it runs once, from Main or the signal handler.
func teardown() error {
	var err error
	teardownOnce.Do(func() {
		setupOnce.Do(func() {}) // no setup may start after this
		if shared != nil {
			err = shared.teardown()
		}
	})
	return err
}

func (c *cluster) teardown() error {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if c.citusNodes != nil {
		return c.teardownCitus(ctx)
	}
	var errs []error
	// A private cluster goes away whole; only a shared server needs the
	// template dropped.
	if c.private == nil && c.admin != nil && c.template != "" {
		if _, err := c.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(c.template)+" WITH (FORCE)"); err != nil {
			errs = append(errs, fmt.Errorf("drop template database %s: %w", c.template, err))
		}
	}
	if c.admin != nil {
		c.admin.Close()
	}
	if c.private != nil {
		if err := c.private.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop private cluster: %w", err))
		}
		// Stop removed the cluster; this catches anything it left.
		os.RemoveAll(c.dataDir)
	}
	return errors.Join(errs...)
}

// ownerURL returns the URL of database name for the admin role.
func (c *cluster) ownerURL(name string) string {
	if c.private != nil {
		return c.private.OwnerURL(name)
	}
	u := *c.base
	u.Path, u.RawPath = "/"+name, ""
	q := u.Query()
	q.Del("dbname") // would override the path
	u.RawQuery = q.Encode()
	return u.String()
}

// appURL returns the URL of database name for quarters_app, which has no
// password.
func (c *cluster) appURL(name string) string {
	if c.private != nil {
		return c.private.AppURL(name)
	}
	u, _ := url.Parse(c.ownerURL(name))
	u.User = url.User(appRole)
	q := u.Query()
	q.Del("user")
	q.Del("password")
	u.RawQuery = q.Encode()
	return u.String()
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// randomHex names databases; 64 bits keep concurrent test binaries on one
// DATABASE_URL server apart.
func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
