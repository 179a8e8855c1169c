// Package quota reports a tenant's exhausted quotas the same way
// everywhere: RESOURCE_EXHAUSTED with a google.rpc.QuotaFailure detail that
// names the limit, and a message saying how to raise it.
package quota

import (
	"fmt"

	"github.com/quarters-dev/quarters/internal/apierr"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

// Exceeded is the error for tenant t having used all of limit (e.g.
// "max_projects", value max) of what (e.g. "projects"); remedy tells the
// caller what to do about it.
func Exceeded(t tenancy.Tenant, limit string, max int64, what, remedy string) error {
	msg := fmt.Sprintf("plan %q allows %d %s (%s); %s", t.Plan, max, what, limit, remedy)
	return apierr.QuotaExceeded(msg, "tenant:"+t.ID.String(), apierr.Domain+"/"+what, limit, max)
}
