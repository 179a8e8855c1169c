package quarters

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/proto"
)

// The ErrorInfo domain and reasons Quarters sends: the contract's
// ErrorReason enum (api/quarters/v1/errors.proto), whose value names,
// without their ERROR_REASON_ prefix, are the reasons on the wire.
const errorDomain = "quarters.dev"

var (
	reasonTenantMismatch      = wireReason(quartersv1.ErrorReason_ERROR_REASON_TENANT_MISMATCH)
	reasonTenantSuspended     = wireReason(quartersv1.ErrorReason_ERROR_REASON_TENANT_SUSPENDED)
	reasonDeletionPending     = wireReason(quartersv1.ErrorReason_ERROR_REASON_TENANT_DELETION_PENDING)
	reasonFeatureNotAvailable = wireReason(quartersv1.ErrorReason_ERROR_REASON_FEATURE_NOT_AVAILABLE)
	reasonEmailNotVerified    = wireReason(quartersv1.ErrorReason_ERROR_REASON_EMAIL_NOT_VERIFIED)
)

func wireReason(r quartersv1.ErrorReason) string {
	return strings.TrimPrefix(r.String(), "ERROR_REASON_")
}

// IsNotFound reports whether err is NOT_FOUND: the id never existed, was
// deleted, or belongs to another tenant (which Quarters does not tell apart,
// so as not to reveal that it exists).
func IsNotFound(err error) bool { return connect.CodeOf(err) == connect.CodeNotFound }

// IsUnauthenticated reports whether err is UNAUTHENTICATED: no credential,
// or one that is malformed, unknown, revoked or expired.
func IsUnauthenticated(err error) bool {
	return connect.CodeOf(err) == connect.CodeUnauthenticated
}

// IsPermissionDenied reports whether err is PERMISSION_DENIED, for any
// reason: too small a role, a feature the plan lacks (FeatureNotAvailable),
// a tenant selector that disagrees with the credential (TenantMismatch), a
// suspended tenant (TenantSuspended), or a tenant key on a platform RPC.
func IsPermissionDenied(err error) bool {
	return connect.CodeOf(err) == connect.CodePermissionDenied
}

// RateLimited reports whether err is a rate-limit refusal, and how long to
// wait before calling again: the RetryInfo detail's delay, else the
// Retry-After header. A quota failure is not a rate limit (waiting does not
// help; see QuotaExceeded), nor is any other RESOURCE_EXHAUSTED without a
// wait. A Client with retries enabled has already waited and retried when
// the wait was short enough (see RetryPolicy).
func RateLimited(err error) (retryAfter time.Duration, ok bool) {
	cerr := asError(err, connect.CodeResourceExhausted)
	if cerr == nil || detail[*errdetails.QuotaFailure](cerr) != nil {
		return 0, false
	}
	if ri := detail[*errdetails.RetryInfo](cerr); ri != nil && ri.GetRetryDelay() != nil {
		return max(ri.GetRetryDelay().AsDuration(), 0), true
	}
	if d, ok := parseRetryAfter(cerr.Meta().Get("Retry-After"), time.Now()); ok {
		return d, true
	}
	return 0, false
}

// parseRetryAfter reads a Retry-After value, seconds or an HTTP date
// (RFC 9110, 10.2.3), as a wait from now.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 || s > int64(365*24*time.Hour/time.Second) {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// FeatureNotAvailable reports whether err refuses a call because the
// tenant's plan lacks a feature (PERMISSION_DENIED, ErrorInfo reason
// FEATURE_NOT_AVAILABLE), naming the feature, the tenant's plan and where
// to upgrade.
func FeatureNotAvailable(err error) (feature, plan, upgradeURL string, ok bool) {
	info := errorInfo(err, connect.CodePermissionDenied, reasonFeatureNotAvailable)
	if info == nil {
		return "", "", "", false
	}
	m := info.GetMetadata()
	return m["feature"], m["plan"], m["upgrade_url"], true
}

// QuotaExceeded reports whether err is a quota failure (RESOURCE_EXHAUSTED
// with a QuotaFailure detail), naming the exhausted limit (e.g.
// "max_projects", "max_api_calls_per_month") and its value. Retrying does
// not help: delete something, or raise the limit by upgrading.
func QuotaExceeded(err error) (quotaID string, limit int64, ok bool) {
	cerr := asError(err, connect.CodeResourceExhausted)
	if cerr == nil {
		return "", 0, false
	}
	qf := detail[*errdetails.QuotaFailure](cerr)
	if qf == nil || len(qf.GetViolations()) == 0 {
		return "", 0, false
	}
	v := qf.GetViolations()[0]
	return v.GetQuotaId(), v.GetQuotaValue(), true
}

// FieldViolation is one broken validation rule of a request.
type FieldViolation struct {
	// Field is the path to the field, e.g. "owner_email",
	// "document.title" or `overrides.features["X"]`; empty for a rule on
	// the message as a whole, which RuleID then names.
	Field string
	// RuleID identifies the rule, e.g. "string.email" or "project.name".
	RuleID string
	// Message says what is wrong, in English.
	Message string
}

// Violations returns the broken validation rules of an INVALID_ARGUMENT
// error (its buf.validate.Violations detail), in the server's order; nil
// for any other error.
func Violations(err error) []FieldViolation {
	cerr := asError(err, connect.CodeInvalidArgument)
	if cerr == nil {
		return nil
	}
	vs := detail[*validate.Violations](cerr)
	if vs == nil {
		return nil
	}
	out := make([]FieldViolation, 0, len(vs.GetViolations()))
	for _, v := range vs.GetViolations() {
		out = append(out, FieldViolation{Field: fieldPath(v.GetField()), RuleID: v.GetRuleId(), Message: v.GetMessage()})
	}
	return out
}

// fieldPath prints a path as protovalidate does: names joined by dots,
// with [index] or [key] subscripts.
func fieldPath(p *validate.FieldPath) string {
	var b strings.Builder
	for i, e := range p.GetElements() {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(e.GetFieldName())
		switch e.WhichSubscript() {
		case validate.FieldPathElement_Index_case:
			b.WriteString("[" + strconv.FormatUint(e.GetIndex(), 10) + "]")
		case validate.FieldPathElement_BoolKey_case:
			b.WriteString("[" + strconv.FormatBool(e.GetBoolKey()) + "]")
		case validate.FieldPathElement_IntKey_case:
			b.WriteString("[" + strconv.FormatInt(e.GetIntKey(), 10) + "]")
		case validate.FieldPathElement_UintKey_case:
			b.WriteString("[" + strconv.FormatUint(e.GetUintKey(), 10) + "]")
		case validate.FieldPathElement_StringKey_case:
			b.WriteString("[" + strconv.Quote(e.GetStringKey()) + "]")
		}
	}
	return b.String()
}

// TenantMismatch reports whether err refuses a call because a tenant
// selector (WithTenant's header, or the subdomain) names another tenant
// than the credential's (PERMISSION_DENIED, reason TENANT_MISMATCH).
func TenantMismatch(err error) bool {
	return errorInfo(err, connect.CodePermissionDenied, reasonTenantMismatch) != nil
}

// TenantSuspended reports whether err refuses a call because the tenant is
// suspended (PERMISSION_DENIED, reason TENANT_SUSPENDED). Its data is kept;
// the operator can resume it.
func TenantSuspended(err error) bool {
	return errorInfo(err, connect.CodePermissionDenied, reasonTenantSuspended) != nil
}

// TenantDeletionPending reports whether err refuses a call because the
// tenant's deletion is pending (PERMISSION_DENIED, reason
// TENANT_DELETION_PENDING), and returns when its data is purged. Until
// then its owner may export the data and cancel the deletion
// (TenantService.CancelTenantDeletion).
func TenantDeletionPending(err error) (purgeTime time.Time, ok bool) {
	info := errorInfo(err, connect.CodePermissionDenied, reasonDeletionPending)
	if info == nil {
		return time.Time{}, false
	}
	t, _ := time.Parse(time.RFC3339, info.GetMetadata()["purge_time"])
	return t, true
}

// EmailNotVerified reports whether err refuses a sign-in because the
// account's email is not verified yet (FAILED_PRECONDITION, reason
// EMAIL_NOT_VERIFIED; the password was right). The person opens the link
// mailed to them; AuthService.RequestEmailVerification sends another.
func EmailNotVerified(err error) bool {
	return errorInfo(err, connect.CodeFailedPrecondition, reasonEmailNotVerified) != nil
}

// asError returns err's *connect.Error if it has code, else nil.
func asError(err error, code connect.Code) *connect.Error {
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Code() != code {
		return nil
	}
	return cerr
}

// errorInfo returns err's Quarters ErrorInfo detail with reason, if err
// has code.
func errorInfo(err error, code connect.Code, reason string) *errdetails.ErrorInfo {
	cerr := asError(err, code)
	if cerr == nil {
		return nil
	}
	for _, d := range cerr.Details() {
		v, derr := d.Value()
		if info, ok := v.(*errdetails.ErrorInfo); derr == nil && ok &&
			info.GetReason() == reason && info.GetDomain() == errorDomain {
			return info
		}
	}
	return nil
}

// detail returns cerr's first detail of type T, or nil. Details of types
// this binary does not know are skipped.
func detail[T proto.Message](cerr *connect.Error) T {
	var zero T
	for _, d := range cerr.Details() {
		v, err := d.Value()
		if err != nil {
			continue
		}
		if t, ok := v.(T); ok {
			return t
		}
	}
	return zero
}
