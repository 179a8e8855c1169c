package document

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/quarters-dev/quarters/gen/dbsqlc"
)

// TestListToProto: the pooled conversion of a page gives the same
// messages as converting each row alone.
func TestListToProto(t *testing.T) {
	t.Parallel()
	var rows []dbsqlc.Document
	for i := range 60 {
		at := time.Date(2026, 12, 4, 1, 2, 3, i*1001, time.UTC)
		rows = append(rows, dbsqlc.Document{
			TenantID: uuid.New(), ID: uuid.New(), ProjectID: uuid.New(),
			Title: "title é \"" + string(rune('a'+i%26)), Content: "",
			CreateTime: at, UpdateTime: at.Add(time.Duration(i) * time.Hour).In(time.FixedZone("x", 3600)),
		})
	}
	rows = append(rows, dbsqlc.Document{}) // zero ids and times
	got := listToProto(rows)
	require.Len(t, got, len(rows))
	for i, r := range rows {
		require.True(t, proto.Equal(toProto(r), got[i]), "row %d: %v vs %v", i, toProto(r), got[i])
		require.Equal(t, r.ID.String(), got[i].GetId())
	}
	require.Empty(t, listToProto(nil))
}
