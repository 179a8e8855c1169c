package db_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/gen/dbsqlc"
)

// TestArenaScan: rows read inside a tenant transaction scan text into a
// shared buffer, and every string keeps its value after later rows are
// read (across many buffer chunks); other types scan as pgx scans them;
// NULL into *string is pgx's error, and so is a wrong column count.
func TestArenaScan(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	type row struct {
		n         int64
		s, v, e   string
		id        uuid.UUID
		at        time.Time
		maybe     pgtype.Text
		maybeUUID *uuid.UUID
	}
	var got []row
	err := f.db.InTenantDBTX(as(f.a), func(tx dbsqlc.DBTX) error {
		rows, err := tx.Query(ctx, `select i, 'row ' || i || ' ' || repeat('é', i % 300), ('v' || i)::varchar, '',
				md5(i::text)::uuid, timestamptz '2026-01-02 03:04:05.123456Z' + i * interval '1 second',
				case when i % 2 = 0 then 'even' end, case when i % 3 = 0 then md5(i::text)::uuid end
			from generate_series(1, 2000) i`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.n, &r.s, &r.v, &r.e, &r.id, &r.at, &r.maybe, &r.maybeUUID); err != nil {
				return err
			}
			got = append(got, r)
		}
		return rows.Err()
	})
	require.NoError(t, err)
	require.Len(t, got, 2000)
	base := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	for i, r := range got {
		n := i + 1
		require.Equal(t, int64(n), r.n)
		require.Equal(t, fmt.Sprintf("row %d %s", n, strings.Repeat("é", n%300)), r.s)
		require.Equal(t, fmt.Sprintf("v%d", n), r.v)
		require.Equal(t, "", r.e)
		require.True(t, base.Add(time.Duration(n)*time.Second).Equal(r.at))
		require.Equal(t, n%2 == 0, r.maybe.Valid)
		require.Equal(t, n%3 == 0, r.maybeUUID != nil)
		if r.maybeUUID != nil {
			require.Equal(t, r.id, *r.maybeUUID)
		}
	}

	err = f.db.InTenantDBTX(as(f.a), func(tx dbsqlc.DBTX) error {
		var s string
		return tx.QueryRow(ctx, `select null::text`).Scan(&s)
	})
	require.ErrorContains(t, err, "cannot scan NULL into *string")
	err = f.db.InTenantDBTX(as(f.a), func(tx dbsqlc.DBTX) error {
		var s string
		return tx.QueryRow(ctx, `select 'a', 'b'`).Scan(&s)
	})
	require.ErrorContains(t, err, "number of field descriptions must equal number of destinations")
}
