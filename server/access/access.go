// Package access enforces the access rule every RPC declares in the proto
// contract with the (quarters.v1.access) method option: public, or a minimum
// role. The contract is the one place a reader learns who may call what.
package access

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/server/auth"
)

// Rules maps a procedure ("/quarters.v1.ProjectService/GetProject") to its
// declared rule.
type Rules map[string]*quartersv1.AccessRule

// RulesFor reads the rule of every method of services. It returns an error
// naming the first method that declares none, or an empty one.
func RulesFor(services ...protoreflect.ServiceDescriptor) (Rules, error) {
	rules := make(Rules)
	for _, svc := range services {
		methods := svc.Methods()
		for i := range methods.Len() {
			m := methods.Get(i)
			rule, ok := RuleOf(m)
			if !ok {
				return nil, fmt.Errorf("%s has no (quarters.v1.access) rule", m.FullName())
			}
			rules[Procedure(m)] = rule
		}
	}
	return rules, nil
}

// RuleOf returns the access rule declared on m, and whether it declares a
// usable one: public, or with a minimum role.
func RuleOf(m protoreflect.MethodDescriptor) (*quartersv1.AccessRule, bool) {
	opts := m.Options()
	if opts == nil || !proto.HasExtension(opts, quartersv1.E_Access) {
		return nil, false
	}
	rule, _ := proto.GetExtension(opts, quartersv1.E_Access).(*quartersv1.AccessRule)
	if rule == nil || (!rule.GetPublic() && rule.GetMinRole() == quartersv1.Role_ROLE_UNSPECIFIED) {
		return nil, false
	}
	return rule, true
}

// Procedure is the Connect procedure name of m.
func Procedure(m protoreflect.MethodDescriptor) string {
	return "/" + string(m.Parent().FullName()) + "/" + string(m.Name())
}

// IsPublic reports whether procedure may be called without a credential.
// Unknown procedures are not public.
func (r Rules) IsPublic(procedure string) bool {
	rule, ok := r[procedure]
	return ok && rule.GetPublic()
}

// NewInterceptor returns an interceptor that refuses calls the procedure's
// rule does not allow: no credential is UNAUTHENTICATED, too small a role is
// PERMISSION_DENIED, and a procedure without a rule is refused outright
// (INTERNAL), so a forgotten rule fails closed.
func NewInterceptor(rules Rules) connect.Interceptor {
	return &interceptor{rules: rules}
}

type interceptor struct{ rules Rules }

func (i *interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if err := i.authorize(ctx, req.Spec().Procedure); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (i *interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i *interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := i.authorize(ctx, conn.Spec().Procedure); err != nil {
			return err
		}
		return next(ctx, conn)
	}
}

func (i *interceptor) authorize(ctx context.Context, procedure string) error {
	rule, ok := i.rules[procedure]
	if !ok {
		return connect.NewError(connect.CodeInternal, fmt.Errorf("%s declares no access rule", procedure))
	}
	if rule.GetPublic() {
		return nil
	}
	p, ok := auth.FromContext(ctx)
	if !ok {
		return connect.NewError(connect.CodeUnauthenticated, errors.New("missing credential: send \"Authorization: Bearer <API key>\""))
	}
	if p.Role < rule.GetMinRole() {
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf(
			"%s requires role %s or higher; this credential has role %s",
			procedure, auth.RoleName(rule.GetMinRole()), auth.RoleName(p.Role)))
	}
	return nil
}
