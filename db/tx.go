package db

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/quarters-dev/quarters/gen/dbsqlc"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// InTenant runs fn in one transaction acting for the tenant in ctx: the
// tenant id is set with set_config('app.tenant_id', id, true), which lasts
// until the transaction ends, so it never leaks to the pooled connection's
// next user (and stays correct behind PgBouncer in transaction mode).
// Row-level security then limits every statement to that tenant's rows.
//
// fn's error, or a failure to commit, rolls the transaction back and is
// returned. With no tenant in ctx, InTenant returns tenancy.ErrNoTenant and
// runs nothing: there is no "all tenants" mode.
//
// The plan's statement_timeout is set the same way, in the same statement.
//
// Round trips: the transaction starts lazily, so BEGIN and set_config travel
// in one batch with fn's first statement; a single-statement read costs two
// round trips (that batch, then COMMIT) where the bare read costs one.
func (d *DB) InTenant(ctx context.Context, fn func(q *dbsqlc.Queries) error) error {
	t, ok := tenancy.FromContext(ctx)
	if !ok {
		return tenancy.ErrNoTenant
	}
	return d.inTenantTx(ctx, t.ID, t.Limits.StatementTimeout, func(tx dbsqlc.DBTX) error { return fn(dbsqlc.New(tx)) })
}

// InTenantV is InTenant for functions that return a value.
func InTenantV[T any](ctx context.Context, d *DB, fn func(q *dbsqlc.Queries) (T, error)) (T, error) {
	var v T
	err := d.InTenant(ctx, func(q *dbsqlc.Queries) error {
		var err error
		v, err = fn(q)
		return err
	})
	return v, err
}

// ActAs is InTenant for callers that are not (yet) the tenant: sign-up,
// where fn inserts the tenants row with this id (row-level security admits
// no other); sign-in, refresh and invitations, once a privileged lookup
// (identity.go) has named the tenant; and the platform operator
// administering one tenant.
func (d *DB) ActAs(ctx context.Context, id uuid.UUID, fn func(q *dbsqlc.Queries) error) error {
	if id == uuid.Nil {
		return tenancy.ErrNoTenant
	}
	return d.inTenant(ctx, id, fn)
}

// inTenant acts for id with the default statement timeout: for sign-up
// and for loading the tenant record, before the plan's timeout is known.
func (d *DB) inTenant(ctx context.Context, id uuid.UUID, fn func(q *dbsqlc.Queries) error) error {
	return d.inTenantTx(ctx, id, 0, func(tx dbsqlc.DBTX) error { return fn(dbsqlc.New(tx)) })
}

// InTenantTx is InTenant for work that must share the tenant's
// transaction with code outside sqlc: enqueueing a job with River's
// InsertTx (internal/jobs), so the job commits, or rolls back, with the
// change that causes it. fn gets the Queries and that same transaction as
// a pgx.Tx. The transaction begins eagerly, so it costs one round trip
// more than InTenant; use it only where fn needs the pgx.Tx.
func (d *DB) InTenantTx(ctx context.Context, fn func(q *dbsqlc.Queries, tx pgx.Tx) error) error {
	t, ok := tenancy.FromContext(ctx)
	if !ok {
		return tenancy.ErrNoTenant
	}
	return d.eagerTx(ctx, t.ID, t.Limits.StatementTimeout, pgx.TxOptions{}, fn)
}

// InTenantSnapshotTx is InTenantTx in a REPEATABLE READ transaction: every
// statement of fn reads the same snapshot, taken by the first one (the
// tenant's set_config), so work that reads many tables one after another
// (a tenant export) sees them as they were at one instant, not a change
// committed halfway through. A write of fn that conflicts with a change
// committed since fails with a serialization error; fn should write only
// rows it locked first.
func (d *DB) InTenantSnapshotTx(ctx context.Context, fn func(q *dbsqlc.Queries, tx pgx.Tx) error) error {
	t, ok := tenancy.FromContext(ctx)
	if !ok {
		return tenancy.ErrNoTenant
	}
	return d.eagerTx(ctx, t.ID, t.Limits.StatementTimeout, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, fn)
}

// ActAsTx is ActAs for fn that needs the pgx.Tx too, as InTenantTx.
func (d *DB) ActAsTx(ctx context.Context, id uuid.UUID, fn func(q *dbsqlc.Queries, tx pgx.Tx) error) error {
	if id == uuid.Nil {
		return tenancy.ErrNoTenant
	}
	return d.eagerTx(ctx, id, 0, pgx.TxOptions{}, fn)
}

// eagerTx runs fn in a pgx transaction begun with opts, acting for id,
// with the same transaction-local settings as inTenantTx.
func (d *DB) eagerTx(ctx context.Context, id uuid.UUID, timeout time.Duration, opts pgx.TxOptions, fn func(q *dbsqlc.Queries, tx pgx.Tx) error) (err error) {
	if timeout <= 0 {
		timeout = DefaultStatementTimeout
	}
	tx, err := d.pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	done := false
	defer func() {
		if !done {
			// Also on a panic, and after the caller's context is gone: a
			// failed rollback closes the connection, which the pool then
			// drops instead of reusing.
			rctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
			_ = tx.Rollback(rctx)
			cancel()
		}
	}()
	ms := strconv.FormatInt(timeout.Milliseconds(), 10)
	if d.citus {
		for _, s := range citusSetLocal(id.String(), ms) {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("set tenant: %w", err)
			}
		}
	} else if _, err := tx.Exec(ctx, "select set_config('app.tenant_id', $1, true), set_config('statement_timeout', $2, true)",
		id.String(), ms); err != nil {
		return fmt.Errorf("set tenant: %w", err)
	}
	if err := fn(dbsqlc.New(edgeTx{tx}), tx); err != nil {
		return err
	}
	done = true
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// DefaultStatementTimeout bounds statements where no plan says otherwise.
const DefaultStatementTimeout = 5 * time.Second

func (d *DB) inTenantTx(ctx context.Context, id uuid.UUID, timeout time.Duration, fn func(tx dbsqlc.DBTX) error) (err error) {
	if timeout <= 0 {
		timeout = DefaultStatementTimeout
	}
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	tx := &lazyTx{conn: conn.Conn(), tenantID: id.String(), timeout: strconv.FormatInt(timeout.Milliseconds(), 10), citus: d.citus}
	defer func() {
		// On error (and on a panic, which then continues) an open
		// transaction is rolled back before the connection goes back.
		r := recover()
		if tx.begun {
			tx.rollback()
		}
		// pgxpool destroys a connection that is closed or still inside a
		// transaction instead of reusing it, so a failed rollback cannot
		// hand a tenant's open transaction to the next caller.
		conn.Release()
		if r != nil {
			panic(r)
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if !tx.begun {
		return nil
	}
	if err := d.commit(ctx, tx.conn); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	tx.begun = false
	return nil
}

// commitStatement names the COMMIT every connection prepares (configure).
const commitStatement = "quarters_commit"

// commit ends conn's transaction. pgx sends a statement without
// arguments over the simple protocol, which PostgreSQL parses and plans
// afresh every time; the prepared statement is only bound and executed
// (the extended protocol). Issue 10's profile put the simple COMMIT at
// 4.6 % of a ListDocuments call; not measured apart since. Pools
// in another query exec mode (e.g. for PgBouncer without prepared
// statements) use the plain statement.
func (d *DB) commit(ctx context.Context, conn *pgx.Conn) error {
	if !d.preparedCommit {
		_, err := conn.Exec(ctx, "commit")
		return err
	}
	_, err := conn.PgConn().ExecPrepared(ctx, commitStatement, nil, nil, nil).Close()
	return err
}

// lazyTx implements sqlc's DBTX. Its first statement is sent in one batch
// after "begin" and the set_config call, so starting the tenant's
// transaction adds no round trip of its own.
type lazyTx struct {
	conn     *pgx.Conn
	tenantID string
	timeout  string // statement_timeout in milliseconds
	citus    bool   // set the tenant with SET LOCAL (citusSetLocal)
	begun    bool
	batch    pgx.Batch
	queued   [5]*pgx.QueuedQuery
}

// citusSetLocal are the statements that set the tenant and the statement
// timeout on Citus. set_config() is a function call, which Citus does not
// forward, so a shard on a worker would see no tenant and row-level
// security there would hide every row; SET LOCAL is forwarded to every
// worker the transaction touches (now or later) when
// citus.propagate_set_commands is 'local', set first. SET takes no
// parameters: the tenant is a uuid.UUID formatted by its String method
// (hex digits and dashes), never caller text, and the timeout a number.
func citusSetLocal(tenantID, timeoutMS string) [3]string {
	return [3]string{
		"set local citus.propagate_set_commands = 'local'",
		"set local app.tenant_id = '" + tenantID + "'",
		"set local statement_timeout = " + timeoutMS,
	}
}

// rollbackTimeout bounds a rollback that runs after the request's context
// was cancelled: the rollback must still happen.
const rollbackTimeout = 5 * time.Second

func (t *lazyTx) rollback() {
	ctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
	defer cancel()
	if _, err := t.conn.Exec(ctx, "rollback"); err != nil {
		// The connection's state is unknown; closing it makes the pool drop
		// it rather than reuse it.
		_ = t.conn.Close(ctx)
	}
	t.begun = false
}

// start sends the batch and consumes the results of begin and set_config.
// From here on the connection is inside the transaction, whatever happens to
// the third statement, so begun is set before it is read.
func (t *lazyTx) start(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	// The batch lives in t, its queue in t's array: no allocations of
	// their own on every request.
	b := &t.batch
	b.QueuedQueries = t.queued[:0]
	b.Queue("begin")
	sets := 1
	if t.citus {
		stmts := citusSetLocal(t.tenantID, t.timeout)
		for _, s := range stmts {
			b.Queue(s)
		}
		sets = len(stmts)
	} else {
		b.Queue("select set_config('app.tenant_id', $1, true), set_config('statement_timeout', $2, true)", t.tenantID, t.timeout)
	}
	b.Queue(sql, args...)
	br := t.conn.SendBatch(ctx, b)
	t.begun = true
	if _, err := br.Exec(); err != nil {
		br.Close()
		return nil, fmt.Errorf("begin: %w", err)
	}
	for range sets {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, fmt.Errorf("set tenant: %w", err)
		}
	}
	return br, nil
}

func (t *lazyTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.begun {
		return t.conn.Exec(ctx, sql, args...)
	}
	br, err := t.start(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

func (t *lazyTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	// Rows scan text columns into a shared buffer (scan.go).
	if t.begun {
		rows, err := t.conn.Query(ctx, sql, args...)
		if err != nil {
			return nil, err
		}
		return newArenaRows(rows), nil
	}
	br, err := t.start(ctx, sql, args)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, err
	}
	return newArenaRows(&batchRows{Rows: rows, br: br}), nil
}

func (t *lazyTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := t.Query(ctx, sql, args...)
	return &firstRow{rows: rows, err: err}
}

// batchRows closes the batch with the rows, freeing the connection.
type batchRows struct {
	pgx.Rows
	br pgx.BatchResults
}

func (r *batchRows) Close() {
	r.Rows.Close()
	r.br.Close()
}

// firstRow is pgx.Row over Rows, as pgx's own QueryRow does it: Scan reads
// the first row, returns ErrNotFound if there is none, and closes.
type firstRow struct {
	rows pgx.Rows
	err  error
}

func (r *firstRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		r.rows.Close()
		if err := r.rows.Err(); err != nil {
			return err
		}
		return notFoundErr{}
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}
