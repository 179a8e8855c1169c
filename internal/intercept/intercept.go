// Package intercept builds Connect interceptors from a single function that
// runs before the handler. Connect's interceptor interface has three
// methods (unary, streaming client, streaming handler); a check that must
// not be skipped by a future streaming RPC has to wrap both handler paths,
// and this writes that once.
package intercept

import (
	"context"

	"connectrpc.com/connect"
)

// BeforeFunc runs before a handler. It may return a new context for the
// handler, or an error to refuse the call.
type BeforeFunc func(ctx context.Context, spec connect.Spec) (context.Context, error)

// Before returns a handler interceptor that runs fn before every unary and
// streaming call. Clients are not intercepted.
func Before(fn BeforeFunc) connect.Interceptor { return before(fn) }

type before BeforeFunc

func (b before) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		ctx, err := b(ctx, req.Spec())
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (b before) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (b before) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := b(ctx, conn.Spec())
		if err != nil {
			return err
		}
		return next(ctx, conn)
	}
}
