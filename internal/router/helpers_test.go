package router_test

import (
	"context"

	"connectrpc.com/connect"
)

var ctx = context.Background()

func req[T any](m *T) *connect.Request[T] { return connect.NewRequest(m) }
