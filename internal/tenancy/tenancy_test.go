package tenancy_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// TestRolesMatchTheContract: Role's numbers are quarters.v1.Role's, so
// the conversions at the API edge are plain casts, and the names are the
// database's.
func TestRolesMatchTheContract(t *testing.T) {
	require.Len(t, quartersv1.Role_name, 4, "a role was added to the contract: add it to tenancy")
	for num, name := range quartersv1.Role_name {
		r := tenancy.Role(num)
		if num == 0 {
			require.Equal(t, "unspecified", r.String())
			continue
		}
		require.Equal(t, r, tenancy.ParseRole(strings.TrimPrefix(name, "ROLE_")), name)
		require.Equal(t, r, tenancy.ParseRole(r.String()))
	}
	require.Equal(t, tenancy.RoleUnspecified, tenancy.ParseRole("root"))
	require.Less(t, tenancy.RoleMember, tenancy.RoleAdmin)
	require.Less(t, tenancy.RoleAdmin, tenancy.RoleOwner)
}
