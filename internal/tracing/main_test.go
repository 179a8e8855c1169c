package tracing_test

import (
	"testing"

	"github.com/quarters-dev/quarters/db/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }
