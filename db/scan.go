package db

import (
	"reflect"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// arenaRows is pgx.Rows whose Scan copies text columns into one growing
// buffer per result instead of one allocation per value: a page of 50
// documents costs a few allocations for its titles and contents, not 100
// (issue 10). Every other column is scanned by pgx's own plans, value by
// value, with the connection's type map.
//
// The strings point into the buffer, which is only ever appended to, so
// a string never changes after Scan returns; a string that outlives the
// result keeps its chunk (at most arenaMaxChunk) alive.
type arenaRows struct {
	pgx.Rows
	arena []byte
	err   error
	// Each column's scan plan for the destination type it was made for,
	// as pgx's own rows cache them.
	plans []pgtype.ScanPlan
	types []reflect.Type
}

const (
	arenaFirstChunk = 1 << 10
	arenaMaxChunk   = 32 << 10
)

func newArenaRows(rows pgx.Rows) *arenaRows { return &arenaRows{Rows: rows} }

func (r *arenaRows) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.Rows.Err()
}

func (r *arenaRows) Scan(dest ...any) error {
	fds, c := r.FieldDescriptions(), r.Conn()
	if len(dest) != len(fds) || r.err != nil || c == nil {
		return r.Rows.Scan(dest...) // pgx's own errors
	}
	if len(dest) == 1 {
		if _, ok := dest[0].(pgx.RowScanner); ok {
			return r.Rows.Scan(dest...) // scans the row itself
		}
	}
	raw, m := r.RawValues(), c.TypeMap()
	for i, d := range dest {
		if d == nil {
			continue
		}
		fd := &fds[i]
		if s, ok := d.(*string); ok && (fd.DataTypeOID == pgtype.TextOID || fd.DataTypeOID == pgtype.VarcharOID) {
			// Text and varchar are their UTF-8 bytes in both formats.
			if raw[i] == nil {
				return r.fail(pgx.ScanArgError{ColumnIndex: i, FieldName: fd.Name, Err: errNullString})
			}
			*s = r.str(raw[i])
			continue
		}
		if r.plans == nil {
			r.plans, r.types = make([]pgtype.ScanPlan, len(fds)), make([]reflect.Type, len(fds))
		}
		if t := reflect.TypeOf(d); r.types[i] != t {
			r.plans[i], r.types[i] = m.PlanScan(fd.DataTypeOID, fd.Format, d), t
		}
		if err := r.plans[i].Scan(raw[i], d); err != nil {
			return r.fail(pgx.ScanArgError{ColumnIndex: i, FieldName: fd.Name, Err: err})
		}
	}
	return nil
}

// fail ends the result with err, as pgx's Scan does.
func (r *arenaRows) fail(err error) error {
	r.err = err
	r.Rows.Close()
	return err
}

func (r *arenaRows) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if cap(r.arena)-len(r.arena) < len(b) {
		// A new chunk; strings already made keep the old one.
		size := min(max(2*cap(r.arena), arenaFirstChunk), arenaMaxChunk)
		r.arena = make([]byte, 0, max(size, len(b)))
	}
	start := len(r.arena)
	r.arena = append(r.arena, b...)
	return unsafe.String(&r.arena[start], len(b))
}

type scanError string

func (e scanError) Error() string { return string(e) }

const errNullString = scanError("cannot scan NULL into *string")
