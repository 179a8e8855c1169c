package observe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/quarters-dev/quarters/db"
)

// PostgreSQL error codes the mapping understands.
const (
	pgUniqueViolation     = "23505"
	pgForeignKeyViolation = "23503"
	pgQueryCanceled       = "57014"
	pgSerialization       = "40001"
	pgDeadlock            = "40P01"
)

// Errors maps the errors handlers (and authentication) return to what the
// client sees, and logs what needs logging: unexpected errors in full, each
// time; a database outage once when it starts and once when it ends. One
// per server: the interceptor and the authentication middleware share it,
// so an outage is one story in the log whichever layer met it first.
type Errors struct {
	logger *slog.Logger
	db     outage
}

// NewErrors returns an Errors that logs to logger.
func NewErrors(logger *slog.Logger) *Errors {
	return &Errors{logger: logger}
}

// Map is the one table from internal errors to Connect errors.
// Decisions already made as *connect.Error pass through unchanged. Rows
// that are absent (or another tenant's, which RLS makes absent) are
// NOT_FOUND with one message for both. A database that cannot be reached
// (refused or broken connections, a server shutting down or not yet
// accepting connections) is UNAVAILABLE, which clients may retry; it is
// logged once per outage (see outage). Anything else unexpected becomes an
// opaque INTERNAL that names the request id, and is logged in full.
func (e *Errors) Map(ctx context.Context, procedure string, err error) error {
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		return err
	}
	if DatabaseUnavailable(err) {
		e.db.failed(ctx, e.logger, procedure, err)
		return connect.NewError(connect.CodeUnavailable, errors.New("the database is unavailable; retry shortly"))
	}
	switch {
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, errors.New("request canceled"))
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New("request deadline exceeded"))
	case errors.Is(err, db.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, fmt.Errorf("%s not found", resourceOf(procedure)))
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case pgUniqueViolation:
			return connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("%s already exists", resourceOf(procedure)))
		case pgForeignKeyViolation:
			// Referencing constraints are named fk_<resource>; a missing
			// referenced row and another tenant's row look the same.
			if res, ok := strings.CutPrefix(pgErr.ConstraintName, "fk_"); ok {
				return connect.NewError(connect.CodeNotFound, fmt.Errorf("%s not found", strings.ReplaceAll(res, "_", " ")))
			}
		case pgQueryCanceled:
			return connect.NewError(connect.CodeDeadlineExceeded, errors.New("the query took too long and was canceled"))
		case pgSerialization, pgDeadlock:
			return connect.NewError(connect.CodeAborted, errors.New("conflicting concurrent update; retry the request"))
		}
	}
	rid := RequestID(ctx)
	e.logger.ErrorContext(ctx, "internal error", "request_id", rid, "procedure", procedure, "error", err)
	return connect.NewError(connect.CodeInternal, fmt.Errorf("internal error (request id %s)", rid))
}

// Succeeded tells Errors that a call completed normally, which during a
// database outage means the database answers again (every RPC that
// succeeds has read or written it).
func (e *Errors) Succeeded(ctx context.Context) { e.db.recovered(ctx, e.logger) }

// PostgreSQL error classes and codes that mean "not reachable now" rather
// than "this statement failed": connection exceptions (08xxx), the server
// shutting down or starting up (57P01–57P03), and no connection slot left
// (53300).
const pgConnectionClass = "08"

var pgUnavailableCodes = map[string]bool{
	"57P01": true, // admin_shutdown
	"57P02": true, // crash_shutdown
	"57P03": true, // cannot_connect_now
	"53300": true, // too_many_connections
}

// DatabaseUnavailable reports whether err shows that PostgreSQL could not
// be reached or dropped the connection, so the same call may succeed
// later: a failed connect (refused, no socket, DNS, TLS, or a deadline
// spent dialling a dead server), a connection closed under the query, or
// the server saying it is shutting down or full. Answers the database did
// give (a constraint, a timeout it enforced) are not outages.
func DatabaseUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false // the caller went away, whatever it was waiting for
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, pgConnectionClass) || pgUnavailableCodes[pgErr.Code]
	}
	// A pooled connection whose server went away fails on its next use
	// with a network error or an unexpected EOF, wrapped by pgconn.
	var netErr net.Error
	if errors.As(err, &netErr) && !errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// outage logs a database outage as two lines, however many calls it
// fails: the first failure (at error, with the error), and the first
// success after it, with how long it lasted and how many failures were not
// logged. Meanwhile a reminder every outageReminder says it is still on.
type outage struct {
	mu         sync.Mutex
	down       bool
	since      time.Time
	lastLog    time.Time
	suppressed int
}

const outageReminder = time.Minute

func (o *outage) failed(ctx context.Context, logger *slog.Logger, procedure string, err error) {
	o.mu.Lock()
	now := time.Now()
	switch {
	case !o.down:
		o.down, o.since, o.lastLog, o.suppressed = true, now, now, 0
		o.mu.Unlock()
		logger.ErrorContext(ctx, "database unavailable: answering UNAVAILABLE; further failures are counted, not logged, until it answers again",
			"procedure", procedure, "request_id", RequestID(ctx), "error", err)
		return
	case now.Sub(o.lastLog) >= outageReminder:
		n := o.suppressed
		o.lastLog, o.suppressed = now, 0
		since := o.since
		o.mu.Unlock()
		logger.ErrorContext(ctx, "database still unavailable", "for", now.Sub(since).Round(time.Second).String(),
			"failed_calls", n+1, "error", err)
		return
	}
	o.suppressed++
	o.mu.Unlock()
}

func (o *outage) recovered(ctx context.Context, logger *slog.Logger) {
	o.mu.Lock()
	if !o.down {
		o.mu.Unlock()
		return
	}
	n, since := o.suppressed, o.since
	o.down = false
	o.mu.Unlock()
	logger.InfoContext(ctx, "database available again", "after", time.Since(since).Round(time.Millisecond).String(), "unlogged_failures", n)
}

// resourceOf names the resource a procedure acts on, from its method name:
// "/quarters.v1.ProjectService/GetProject" is "project".
func resourceOf(procedure string) string {
	method := procedure[strings.LastIndexByte(procedure, '/')+1:]
	for _, verb := range []string{"Get", "Update", "Delete", "Create", "List", "Revoke", "Remove", "Accept", "Suspend", "Resume"} {
		if rest, ok := strings.CutPrefix(method, verb); ok && rest != "" {
			method = rest
			break
		}
	}
	var b strings.Builder
	for i, r := range method {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte(' ')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return "resource"
	}
	return b.String()
}
