// Package apierr builds the Connect errors whose details clients act on:
// the one place that knows the error contract (the ErrorReason enum of
// api/quarters/v1/errors.proto and the google.rpc detail types). Handlers
// and interceptors call these constructors instead of assembling details
// themselves; errors without details are plain connect.NewError, and
// internal errors are mapped once by internal/observe.
package apierr

import (
	"errors"
	"strings"
	"time"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
)

// Domain is the ErrorInfo domain of Quarters' errors.
const Domain = "quarters.dev"

// ReasonOf is r as sent in ErrorInfo.reason: its name without the
// ERROR_REASON_ prefix.
func ReasonOf(r quartersv1.ErrorReason) string {
	return strings.TrimPrefix(r.String(), "ERROR_REASON_")
}

// WithReason is an error of code with msg and an ErrorInfo of reason
// carrying meta.
func WithReason(code connect.Code, reason quartersv1.ErrorReason, msg string, meta map[string]string) *connect.Error {
	return withDetail(connect.NewError(code, errors.New(msg)),
		&errdetails.ErrorInfo{Reason: ReasonOf(reason), Domain: Domain, Metadata: meta})
}

// RetryAfter adds a RetryInfo of wait to err: how long a client should
// back off (the Retry-After header says the same in whole seconds).
func RetryAfter(err *connect.Error, wait time.Duration) *connect.Error {
	return withDetail(err, &errdetails.RetryInfo{RetryDelay: durationpb.New(wait)})
}

// InvalidField is INVALID_ARGUMENT for one field, with a BadRequest
// detail naming it.
func InvalidField(field, msg string) *connect.Error {
	return withDetail(connect.NewError(connect.CodeInvalidArgument, errors.New(msg)),
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: msg}}})
}

// Violations is INVALID_ARGUMENT for cause with protovalidate's
// violations as the detail: the shape the validation interceptor sends,
// so a rule checked in a handler (a password's length) looks like one the
// contract checks.
func Violations(cause error, v *validate.Violations) *connect.Error {
	return withDetail(connect.NewError(connect.CodeInvalidArgument, cause), v)
}

// QuotaExceeded is RESOURCE_EXHAUSTED with msg and a QuotaFailure for the
// subject's quota (metric, id, value).
func QuotaExceeded(msg, subject, metric, id string, value int64) *connect.Error {
	return withDetail(connect.NewError(connect.CodeResourceExhausted, errors.New(msg)),
		&errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{
			Subject: subject, Description: msg, QuotaMetric: metric, QuotaId: id, QuotaValue: value,
		}}})
}

func withDetail(err *connect.Error, m proto.Message) *connect.Error {
	// NewErrorDetail fails only for a message that cannot be marshalled,
	// which none of these is; the error is still sent, without detail.
	if d, derr := connect.NewErrorDetail(m); derr == nil {
		err.AddDetail(d)
	}
	return err
}
