package db

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DB is the server's handle on PostgreSQL, connected as the app role.
type DB struct {
	pool *pgxpool.Pool
	// preparedCommit: every connection has commitStatement prepared
	// (configure), so COMMIT goes over the extended protocol.
	preparedCommit bool
	// txPooling: the URL points at a pooler in transaction mode
	// (OpenOpts.TransactionPooling).
	txPooling bool
	// citus: the database is a Citus coordinator (Open looks), so the
	// tenant is set with SET LOCAL, which Citus forwards to the workers.
	citus bool
}

// OpenOpts tunes Open; nil means defaults.
type OpenOpts struct {
	// MaxConns caps the pool (default: the URL's pool_max_conns, else
	// DefaultMaxConns).
	MaxConns int32
	// ConfigFunc, when set, adjusts the pool's configuration last: tests
	// count round trips by wrapping the dialer (dbtest.Wire).
	ConfigFunc func(*pgxpool.Config)
	// TransactionPooling says the URL points at a pooler in transaction
	// mode (PgBouncer's pool_mode = transaction), where each transaction,
	// and each statement outside one, may run on another server
	// connection: nothing may outlive a transaction on a connection. See
	// ConfigureTransactionPooling; the job client must then poll
	// (DB.TransactionPooling).
	TransactionPooling bool
}

// Open connects to url and verifies that the role it connects as cannot
// bypass row-level security and owns nothing, so RLS is what protects each
// tenant's rows. It returns ErrUnsafeRole (wrapped) otherwise.
func Open(ctx context.Context, url string, opts *OpenOpts) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns()
	}
	if opts != nil && opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	txPooling := opts != nil && opts.TransactionPooling
	if txPooling {
		if err := ConfigureTransactionPooling(cfg, url); err != nil {
			return nil, err
		}
	}
	prepare := cfg.ConnConfig.DefaultQueryExecMode == pgx.QueryExecModeCacheStatement
	configure(cfg, prepare)
	if opts != nil && opts.ConfigFunc != nil {
		opts.ConfigFunc(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	if err := CheckAppRole(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	var citus bool
	if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')").Scan(&citus); err != nil {
		pool.Close()
		return nil, fmt.Errorf("look up citus extension: %w", err)
	}
	return &DB{pool: pool, preparedCommit: prepare, txPooling: txPooling, citus: citus}, nil
}

// Citus reports whether the database is a Citus coordinator.
func (d *DB) Citus() bool { return d.citus }

// TransactionPoolingQueryExecMode is the query mode Open uses behind a
// pooler in transaction mode when the URL names none (pgx's
// default_query_exec_mode). pgx's default, cache_statement, prepares named
// statements on each connection, which PgBouncer 1.18 cannot follow from
// one server connection to the next ("prepared statement stmtcache_…
// already exists", or "does not exist"). cache_describe keeps only the
// statements' descriptions in the client and sends each statement as an
// unnamed one, parsed with its arguments in the same round trip: after
// the first use, as many round trips as cache_statement and no state on
// the server. Measured against exec, describe_exec and simple_protocol
// by BenchmarkPgBouncerQueryMode (README, Behind PgBouncer).
const TransactionPoolingQueryExecMode = pgx.QueryExecModeCacheDescribe

// ConfigureTransactionPooling fits cfg, parsed from url, to a pooler in
// transaction mode: the query mode is TransactionPoolingQueryExecMode
// unless url sets default_query_exec_mode, which may then be anything
// but cache_statement (an error). Open calls it with
// OpenOpts.TransactionPooling; other pools on the same URL (a test's job
// pool) call it too.
func ConfigureTransactionPooling(cfg *pgxpool.Config, url string) error {
	if !strings.Contains(url, "default_query_exec_mode") {
		cfg.ConnConfig.DefaultQueryExecMode = TransactionPoolingQueryExecMode
		return nil
	}
	if cfg.ConnConfig.DefaultQueryExecMode == pgx.QueryExecModeCacheStatement {
		return errors.New("database url: default_query_exec_mode=cache_statement prepares named statements, " +
			"which a pooler in transaction mode (PgBouncer 1.18) cannot keep: remove it (cache_describe is used) " +
			"or choose cache_describe, describe_exec, exec or simple_protocol")
	}
	return nil
}

// TransactionPooling reports whether the pool goes through a pooler in
// transaction mode (OpenOpts.TransactionPooling): then nothing may rely
// on a connection's session, such as LISTEN, so the job client polls.
func (d *DB) TransactionPooling() bool { return d.txPooling }

// DefaultMaxConns is the pool size when neither Open's options nor the URL
// (pool_max_conns) set one: eight per core Go may use, at least 4. Each
// request holds a connection for one short transaction of two round
// trips, and on a busy machine most of that time is spent waiting for
// PostgreSQL's process to be scheduled, not working: measured with task
// bench:compare on 2 shared cores (README, Performance), ListDocuments
// over JSON gave 1,355 req/s with 4 connections, then 1,846 with 8 and
// 2,188 with 16 in single rounds right after. QUARTERS_DB_MAX_CONNS
// overrides it.
func DefaultMaxConns() int32 { return int32(max(4, 8*runtime.GOMAXPROCS(0))) }

// Pool is the underlying pool, for health checks and tests.
func (d *DB) Pool() *pgxpool.Pool { return d.pool }

// Close closes the pool.
func (d *DB) Close() { d.pool.Close() }

// Ping reports whether the database answers.
func (d *DB) Ping(ctx context.Context) error { return d.pool.Ping(ctx) }

// ErrUnsafeRole means the server's database role could read across tenants.
var ErrUnsafeRole = errors.New("unsafe database role")

// CheckAppRole returns ErrUnsafeRole (wrapped, with the reason) if the
// pool's role is a superuser, has BYPASSRLS, or owns any table, schema or
// function outside the system schemas: an owner is exempt from row-level
// security unless every table forces it, and could simply disable it.
func CheckAppRole(ctx context.Context, pool *pgxpool.Pool) error {
	const q = `
SELECT r.rolname, r.rolsuper, r.rolbypassrls,
  (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relowner = r.oid AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema')
  + (SELECT count(*) FROM pg_namespace n
    WHERE n.nspowner = r.oid AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema')
  + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE p.proowner = r.oid AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema')
FROM pg_roles r WHERE r.rolname = current_user`
	var (
		name          string
		super, bypass bool
		owned         int64
	)
	if err := pool.QueryRow(ctx, q).Scan(&name, &super, &bypass, &owned); err != nil {
		return fmt.Errorf("check database role: %w", err)
	}
	switch {
	case super:
		return fmt.Errorf("%w: role %q is a superuser; connect as quarters_app (see README)", ErrUnsafeRole, name)
	case bypass:
		return fmt.Errorf("%w: role %q has BYPASSRLS; connect as quarters_app (see README)", ErrUnsafeRole, name)
	case owned > 0:
		return fmt.Errorf("%w: role %q owns %d database objects; connect as quarters_app, not the owner that runs migrations", ErrUnsafeRole, name, owned)
	}
	return nil
}
