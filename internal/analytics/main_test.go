package analytics_test

import (
	"context"
	"testing"

	"connectrpc.com/connect"

	"github.com/quarters-dev/quarters/db/dbtest"
)

// The API tests here run real servers (servertest) on databases of the
// package's own test cluster.
func TestMain(m *testing.M) { dbtest.Main(m) }

var ctx = context.Background()

func req[T any](m *T) *connect.Request[T] { return connect.NewRequest(m) }
