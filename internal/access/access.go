// Package access enforces the access rule every RPC declares in the proto
// contract with the (quarters.v1.access) method option: public, or a minimum
// role. The contract is the one place a reader learns who may call what.
package access

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apierr"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/intercept"
	"github.com/quarters-dev/quarters/internal/protoconv"
	"github.com/quarters-dev/quarters/internal/tenancy"
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
			if err := checkAccountField(m, rule); err != nil {
				return nil, err
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
	if rule == nil || (!rule.GetPublic() && !rule.GetPlatform() && rule.GetMinRole() == quartersv1.Role_ROLE_UNSPECIFIED) {
		return nil, false
	}
	return rule, true
}

// checkAccountField fails for an account_field that is not a singular
// string field of m's request on a public RPC, so a typo in the contract
// stops the server at start-up rather than silently not limiting.
func checkAccountField(m protoreflect.MethodDescriptor, rule *quartersv1.AccessRule) error {
	name := rule.GetAccountField()
	if name == "" {
		return nil
	}
	f := m.Input().Fields().ByName(protoreflect.Name(name))
	switch {
	case !rule.GetPublic():
		return fmt.Errorf("%s: account_field is for public RPCs", m.FullName())
	case f == nil || f.Kind() != protoreflect.StringKind || f.Cardinality() == protoreflect.Repeated:
		return fmt.Errorf("%s: account_field %q is not a string field of %s", m.FullName(), name, m.Input().FullName())
	}
	return nil
}

// Account returns the account a call to procedure names in its request
// msg, if the procedure declares an account_field: the field's value,
// trimmed and lower-cased (emails are case-insensitive), and false for a
// procedure without one or an empty value.
func (r Rules) Account(procedure string, msg any) (string, bool) {
	name := r[procedure].GetAccountField()
	m, ok := msg.(proto.Message)
	if name == "" || !ok {
		return "", false
	}
	pm := m.ProtoReflect()
	f := pm.Descriptor().Fields().ByName(protoreflect.Name(name))
	if f == nil || f.Kind() != protoreflect.StringKind || f.Cardinality() == protoreflect.Repeated {
		return "", false
	}
	account := strings.ToLower(strings.TrimSpace(pm.Get(f).String()))
	return account, account != ""
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
//
// A rule that names a feature also needs the tenant's effective features
// to include it: otherwise PERMISSION_DENIED with an ErrorInfo (reason
// FEATURE_NOT_AVAILABLE; metadata feature, plan, upgrade_url). A rule
// marked user refuses API keys (PERMISSION_DENIED): it acts for a person.
func NewInterceptor(rules Rules, upgradeURL string) connect.Interceptor {
	i := &interceptor{rules: rules, upgradeURL: upgradeURL}
	return intercept.Before(func(ctx context.Context, spec connect.Spec) (context.Context, error) {
		return ctx, i.authorize(ctx, spec.Procedure)
	})
}

type interceptor struct {
	rules      Rules
	upgradeURL string
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
		return connect.NewError(connect.CodeUnauthenticated, errors.New("missing credential: send \"Authorization: Bearer <API key or access token>\""))
	}
	if rule.GetPlatform() != p.Platform {
		if rule.GetPlatform() {
			return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s is for the platform operator; tenant credentials cannot call it", procedure))
		}
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s acts for a tenant; use a tenant's API key, not the platform key", procedure))
	}
	if rule.GetPlatform() {
		return nil
	}
	if p.Role < tenancy.Role(rule.GetMinRole()) {
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf(
			"%s requires role %s or higher; this credential has role %s",
			procedure, protoconv.RoleName(rule.GetMinRole()), p.Role.String()))
	}
	if rule.GetUser() && !p.IsUser() {
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf(
			"%s acts for a signed-in user; use an access token from AuthService.SignIn, not an API key", procedure))
	}
	if f := rule.GetFeature(); f != "" {
		t, ok := tenancy.FromContext(ctx)
		if !ok || !t.Has(f) {
			return apierr.WithReason(connect.CodePermissionDenied, quartersv1.ErrorReason_ERROR_REASON_FEATURE_NOT_AVAILABLE,
				fmt.Sprintf("%s needs the %q feature, which plan %q does not include; upgrade at %s", procedure, f, t.Plan, i.upgradeURL),
				map[string]string{"feature": f, "plan": t.Plan, "upgrade_url": i.upgradeURL})
		}
	}
	return nil
}

// WhileDeleting reports whether procedure's rule admits it for a tenant
// whose deletion is pending (while_deleting). Unknown procedures are not
// admitted.
func (r Rules) WhileDeleting(procedure string) bool {
	rule, ok := r[procedure]
	return ok && rule.GetWhileDeleting()
}

// Cost is the rate-limit cost the procedure declares (at least 1).
func (r Rules) Cost(procedure string) int {
	if c := int(r[procedure].GetCost()); c > 1 {
		return c
	}
	return 1
}
