package router_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/access"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/password"
	"github.com/quarters-dev/quarters/internal/router"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// TestRoleMatrix calls every RPC as every kind of caller (no credential,
// the platform key, an API key and a signed-in user of each role) and
// checks the outcome against the RPC's declared access rule: a caller the
// rule refuses gets PERMISSION_DENIED (UNAUTHENTICATED without a
// credential); one it admits gets past access control (any other outcome:
// the empty request then fails validation or succeeds). The rules are read
// from the contract, so a new RPC is covered without editing this test.
func TestRoleMatrix(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	s.SetPlan(t, a.ID, "enterprise") // feature gates pass: this tests roles
	s.Unthrottle(t, a.ID)

	callers := []caller{
		{name: "anonymous"},
		{name: "platform", bearer: s.PlatformKey, platform: true},
		{name: "owner user", bearer: a.Owner.GetAccessToken(), role: quartersv1.Role_ROLE_OWNER, user: true},
	}
	owner := s.AsUser(a.Owner)
	for _, role := range []quartersv1.Role{quartersv1.Role_ROLE_MEMBER, quartersv1.Role_ROLE_ADMIN, quartersv1.Role_ROLE_OWNER} {
		name := strings.ToLower(strings.TrimPrefix(role.String(), "ROLE_"))
		resp, err := owner.Auth.CreateApiKey(ctx, req(&quartersv1.CreateApiKeyRequest{Name: name, Role: role}))
		require.NoError(t, err)
		callers = append(callers, caller{name: name + " key", bearer: resp.Msg.GetSecret(), role: role})
		if role == quartersv1.Role_ROLE_OWNER {
			continue
		}
		email := name + "@" + a.Slug + ".example"
		hash, err := password.Hash(servertest.OwnerPassword, servertest.Password)
		require.NoError(t, err)
		s.Exec(t, a.ID, `with u as (insert into users (email, password_hash, email_verify_time) values ($2, $3, now()) returning id)
			insert into memberships (tenant_id, user_id, role) select $1, id, $4 from u`, a.ID, email, hash, name)
		sess := apitest.MustSignIn(t, s, email, servertest.OwnerPassword, a.Slug)
		require.Equal(t, role, sess.GetRole())
		callers = append(callers, caller{name: name + " user", bearer: sess.GetAccessToken(), role: role, user: true})
	}

	rules, err := access.RulesFor(router.Services()...)
	require.NoError(t, err)
	require.NotEmpty(t, rules)
	checked := 0
	for proc, rule := range rules {
		for _, c := range callers {
			want := allowed(rule, c)
			code := callEmpty(t, s, proc, c.bearer)
			switch {
			case want == "":
				require.NotContains(t, []string{"permission_denied", "unauthenticated"}, code, "%s as %s", proc, c.name)
			default:
				require.Equal(t, want, code, "%s as %s", proc, c.name)
			}
			checked++
		}
	}
	require.Equal(t, len(rules)*len(callers), checked)
	require.GreaterOrEqual(t, len(callers), 8)
}

// allowed is the outcome the rule declares for c: "" when admitted, else
// the Connect code of the refusal.
// Caller is one kind of credential in the role matrix.
type caller struct {
	name     string
	bearer   string
	role     quartersv1.Role
	user     bool
	platform bool
}

func allowed(rule *quartersv1.AccessRule, c caller) string {
	switch {
	case rule.GetPublic():
		return ""
	case c.bearer == "":
		return "unauthenticated"
	case rule.GetPlatform() != c.platform:
		return "permission_denied"
	case rule.GetPlatform():
		return ""
	case c.role < rule.GetMinRole(), rule.GetUser() && !c.user:
		return "permission_denied"
	}
	return ""
}

// callEmpty posts {} to proc over Connect JSON and returns the error code,
// or "" on success.
func callEmpty(t *testing.T, s *servertest.Server, proc, bearer string) string {
	t.Helper()
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+proc, strings.NewReader("{}"))
	require.NoError(t, err)
	r.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		r.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := s.HTTP.Do(r)
	require.NoError(t, err)
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return ""
	}
	var body struct{ Code, Message string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body), "%s: status %d", proc, resp.StatusCode)
	require.NotEmpty(t, body.Code, fmt.Sprintf("%s: status %d", proc, resp.StatusCode))
	return body.Code
}
