package observe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"unicode"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PostgreSQL error codes the mapping understands.
const (
	pgUniqueViolation     = "23505"
	pgForeignKeyViolation = "23503"
	pgQueryCanceled       = "57014"
	pgSerialization       = "40001"
	pgDeadlock            = "40P01"
)

// toConnect is the one table from internal errors to what the client sees.
// Decisions already made as *connect.Error pass through unchanged. Rows that
// are absent (or another tenant's, which RLS makes absent) are NOT_FOUND
// with one message for both; anything unexpected becomes an opaque
// INTERNAL that names the request id, and is logged in full.
func toConnect(ctx context.Context, logger *slog.Logger, procedure string, err error) error {
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, errors.New("request canceled"))
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New("request deadline exceeded"))
	case errors.Is(err, pgx.ErrNoRows):
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
	logger.ErrorContext(ctx, "internal error", "request_id", rid, "procedure", procedure, "error", err)
	return connect.NewError(connect.CodeInternal, fmt.Errorf("internal error (request id %s)", rid))
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
