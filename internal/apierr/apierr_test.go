package apierr_test

import (
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apierr"
)

// TestReasonsOnTheWire: the reasons deployed clients branch on are these
// strings; renaming an enum value must not change them unnoticed.
func TestReasonsOnTheWire(t *testing.T) {
	t.Parallel()
	want := map[quartersv1.ErrorReason]string{
		quartersv1.ErrorReason_ERROR_REASON_TENANT_MISMATCH:         "TENANT_MISMATCH",
		quartersv1.ErrorReason_ERROR_REASON_TENANT_SUSPENDED:        "TENANT_SUSPENDED",
		quartersv1.ErrorReason_ERROR_REASON_FEATURE_NOT_AVAILABLE:   "FEATURE_NOT_AVAILABLE",
		quartersv1.ErrorReason_ERROR_REASON_EMAIL_NOT_VERIFIED:      "EMAIL_NOT_VERIFIED",
		quartersv1.ErrorReason_ERROR_REASON_TENANT_DELETION_PENDING: "TENANT_DELETION_PENDING",
	}
	require.Len(t, quartersv1.ErrorReason_name, len(want)+1, "a reason was added: list its wire string here")
	for r, s := range want {
		require.Equal(t, s, apierr.ReasonOf(r))
	}
}

func TestDetails(t *testing.T) {
	t.Parallel()
	err := apierr.WithReason(connect.CodePermissionDenied, quartersv1.ErrorReason_ERROR_REASON_FEATURE_NOT_AVAILABLE, "no", map[string]string{"feature": "sso"})
	require.Equal(t, connect.CodePermissionDenied, err.Code())
	require.Equal(t, "no", err.Message())
	require.Len(t, err.Details(), 1)
	v, derr := err.Details()[0].Value()
	require.NoError(t, derr)
	info := v.(*errdetails.ErrorInfo)
	require.Equal(t, "FEATURE_NOT_AVAILABLE", info.GetReason())
	require.Equal(t, "quarters.dev", info.GetDomain())
	require.Equal(t, "sso", info.GetMetadata()["feature"])

	retry := apierr.RetryAfter(connect.NewError(connect.CodeResourceExhausted, nil), 1500*time.Millisecond)
	v, derr = retry.Details()[0].Value()
	require.NoError(t, derr)
	require.Equal(t, 1500*time.Millisecond, v.(*errdetails.RetryInfo).GetRetryDelay().AsDuration())

	bad := apierr.InvalidField("page_token", "malformed")
	v, derr = bad.Details()[0].Value()
	require.NoError(t, derr)
	require.Equal(t, "page_token", v.(*errdetails.BadRequest).GetFieldViolations()[0].GetField())

	q := apierr.QuotaExceeded("full", "tenant:x", "quarters.dev/projects", "max_projects", 3)
	v, derr = q.Details()[0].Value()
	require.NoError(t, derr)
	require.Equal(t, int64(3), v.(*errdetails.QuotaFailure).GetViolations()[0].GetQuotaValue())
}
