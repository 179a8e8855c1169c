package router

import (
	"connectrpc.com/connect"

	"github.com/quarters-dev/quarters/internal/access"
	"github.com/quarters-dev/quarters/internal/observe"
)

// Interceptors exposes the production chain to benchmarks.
func Interceptors(p Params) []connect.Interceptor {
	rules, err := access.RulesFor(Services()...)
	if err != nil {
		panic(err)
	}
	return interceptors(p, rules, observe.NewErrors(p.Logger), tracingInterceptors{})
}
