package router_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/access"
	"github.com/quarters-dev/quarters/internal/router"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// TestDeletingTenantMatrix calls every tenant RPC as the owner (API key
// and signed-in user) of a tenant whose deletion is pending: the RPCs
// whose rule says while_deleting get past the tenant check, every other
// one is PERMISSION_DENIED with reason TENANT_DELETION_PENDING. The rules
// come from the contract, so a new RPC is refused unless it is marked.
func TestDeletingTenantMatrix(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	s.SetPlan(t, a.ID, "enterprise")
	s.Unthrottle(t, a.ID)
	owner := s.AsUser(a.Owner)
	key, err := owner.Auth.CreateApiKey(ctx, req(&quartersv1.CreateApiKeyRequest{Name: "owner", Role: quartersv1.Role_ROLE_OWNER}))
	require.NoError(t, err)
	_, err = owner.Tenants.DeleteTenant(ctx, req(&quartersv1.DeleteTenantRequest{ConfirmSlug: a.Slug}))
	require.NoError(t, err)

	rules, err := access.RulesFor(router.Services()...)
	require.NoError(t, err)
	var marked []string
	for proc, rule := range rules {
		if rule.GetWhileDeleting() {
			marked = append(marked, proc)
		}
		// Cancelling would end the test's premise: it is called last.
		if rule.GetPublic() || rule.GetPlatform() || proc == quartersv1connect.TenantServiceCancelTenantDeletionProcedure {
			continue
		}
		for _, bearer := range []string{key.Msg.GetSecret(), a.Owner.GetAccessToken()} {
			code, reason := callEmptyReason(t, s, proc, bearer)
			if rule.GetWhileDeleting() {
				require.NotEqual(t, "TENANT_DELETION_PENDING", reason, proc)
				continue
			}
			require.Equal(t, "permission_denied", code, proc)
			require.Equal(t, "TENANT_DELETION_PENDING", reason, proc)
		}
	}
	code, _ := callEmptyReason(t, s, quartersv1connect.TenantServiceCancelTenantDeletionProcedure, key.Msg.GetSecret())
	require.Empty(t, code, "the owner cancels")
	code, _ = callEmptyReason(t, s, quartersv1connect.ProjectServiceListProjectsProcedure, key.Msg.GetSecret())
	require.Empty(t, code, "and the tenant works again")

	// The exceptions, as the contract declares them: what the owner needs
	// to take the data or change their mind, and to sign in to do so.
	slices.Sort(marked)
	require.Equal(t, []string{
		quartersv1connect.AuthServiceRefreshTokenProcedure,
		quartersv1connect.AuthServiceSignInProcedure,
		quartersv1connect.TenantServiceCancelTenantDeletionProcedure,
		quartersv1connect.TenantServiceExportTenantProcedure,
		quartersv1connect.TenantServiceGetTenantProcedure,
		quartersv1connect.TenantServiceGetTenantExportProcedure,
	}, marked)
}

// callEmptyReason is callEmpty that also returns the ErrorInfo reason.
func callEmptyReason(t *testing.T, s *servertest.Server, proc, bearer string) (code, reason string) {
	t.Helper()
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+proc, strings.NewReader("{}"))
	require.NoError(t, err)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := s.HTTP.Do(r)
	require.NoError(t, err)
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return "", ""
	}
	var body struct {
		Code    string
		Details []struct{ Debug struct{ Reason string } }
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body), "%s: status %d", proc, resp.StatusCode)
	for _, d := range body.Details {
		if d.Debug.Reason != "" {
			reason = d.Debug.Reason
		}
	}
	return body.Code, reason
}
