// Package page implements keyset pagination with opaque page tokens, shared
// by every List RPC: lists are ordered newest first by (create_time, id),
// and a token is the position of the last row returned.
package page

import (
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/quarters-dev/quarters/internal/apierr"
)

const (
	// DefaultSize is the page size when the request asks for 0.
	DefaultSize = 50
	// MaxSize matches the protovalidate bound on page_size.
	MaxSize = 100
)

// Cursor is a position in a newest-first list: rows strictly before it.
type Cursor struct {
	Time time.Time
	ID   uuid.UUID
}

// Start is the cursor before which every row lies. Using a real cursor for
// the first page keeps one SQL statement (and one index scan) for all pages.
var Start = Cursor{
	Time: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
	ID:   uuid.Max,
}

type token struct {
	Time   time.Time `json:"t"`
	ID     uuid.UUID `json:"i"`
	Filter string    `json:"f,omitempty"`
}

// Size is the number of rows to return for a requested page size.
func Size(requested int32) int {
	if requested <= 0 {
		return DefaultSize
	}
	return min(int(requested), MaxSize)
}

// Parse decodes a page token. An empty token is the first page. filter
// describes the request's filters (e.g. the project id); a token made for
// other filters is refused, since continuing it would skip or repeat rows.
// Errors are INVALID_ARGUMENT with a field violation on page_token.
//
// Tokens are not tied to a tenant: a token only holds a position, and every
// list query is limited to the caller's tenant, so another tenant's token
// yields only the caller's own rows.
func Parse(pageToken, filter string) (Cursor, error) {
	if pageToken == "" {
		return Start, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(pageToken)
	var t token
	if err == nil {
		err = json.Unmarshal(raw, &t)
	}
	if err != nil || t.ID == uuid.Nil || t.Time.IsZero() {
		return Cursor{}, invalid("page_token is not a token this API issued; pass next_page_token unchanged, or empty for the first page")
	}
	if t.Filter != filter {
		return Cursor{}, invalid("page_token was issued for a different filter; send the same filters as the first page")
	}
	return Cursor{Time: t.Time, ID: t.ID}, nil
}

// Next returns the next_page_token after a page whose last row is at c.
func Next(c Cursor, filter string) string {
	raw, _ := json.Marshal(token{Time: c.Time, ID: c.ID, Filter: filter})
	return base64.RawURLEncoding.EncodeToString(raw)
}

// Request is the paging half of every List RPC's request message.
type Request interface {
	GetPageSize() int32
	GetPageToken() string
}

// Load fetches one page of a newest-first list. It reads req's page token
// (bound to filter, see Parse), has fetch return up to limit rows strictly
// before the cursor (one more than the page, to learn whether another page
// follows), and returns the page with the next page token ("" after the
// last page). Errors are Parse's and fetch's.
func Load[T any](req Request, filter string, fetch func(c Cursor, limit int32) ([]T, error), pos func(T) Cursor) ([]T, string, error) {
	cur, err := Parse(req.GetPageToken(), filter)
	if err != nil {
		return nil, "", err
	}
	size := Size(req.GetPageSize())
	rows, err := fetch(cur, int32(size+1))
	if err != nil {
		return nil, "", err
	}
	rows, next := Trim(rows, size, pos, filter)
	return rows, next, nil
}

// Trim cuts rows fetched with a limit of size+1 to size, and returns the
// token for the next page, or "" when this was the last one.
func Trim[T any](rows []T, size int, pos func(T) Cursor, filter string) ([]T, string) {
	if len(rows) <= size {
		return rows, ""
	}
	rows = rows[:size]
	return rows, Next(pos(rows[size-1]), filter)
}

func invalid(msg string) error {
	return apierr.InvalidField("page_token", msg)
}
