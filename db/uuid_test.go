package db_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db"
)

// TestUUIDBinary: the server's pool scans uuids from their binary form
// into uuid.UUID without text, and values round-trip exactly: plain,
// nullable (*uuid.UUID, NULL and not), arrays, and as parameters; NULL
// into a plain uuid.UUID is an error, not a zero id.
func TestUUIDBinary(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	conn, err := f.db.Pool().Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	require.True(t, db.UUIDScanIsBinary(conn.Conn().TypeMap()), "uuid.UUID scans through uuidCodec")
	require.False(t, db.UUIDScanIsBinary(pgtype.NewMap()), "pgx's default goes through text")

	want := uuid.MustParse("0193a6f2-8c41-7cde-9f00-00ff10203040")
	var (
		got, echo  uuid.UUID
		some, none *uuid.UUID
		list       []uuid.UUID
	)
	require.NoError(t, conn.QueryRow(ctx, `select $1::uuid, '0193a6f2-8c41-7cde-9f00-00ff10203040'::uuid, $1::uuid, null::uuid, array[$1::uuid, gen_random_uuid()]`, want).
		Scan(&echo, &got, &some, &none, &list))
	require.Equal(t, want, got)
	require.Equal(t, want, echo)
	require.NotNil(t, some)
	require.Equal(t, want, *some)
	require.Nil(t, none)
	require.Len(t, list, 2)
	require.Equal(t, want, list[0])

	var text string
	require.NoError(t, conn.QueryRow(ctx, `select $1::uuid::text`, want).Scan(&text))
	require.Equal(t, want.String(), text, "parameters are written as the same 16 bytes")

	err = conn.QueryRow(ctx, `select null::uuid`).Scan(&got)
	require.ErrorContains(t, err, "NULL")
}
