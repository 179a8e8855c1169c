package input

import (
	"context"
	"errors"
	"regexp"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"connectrpc.com/connect"
)

// protovalidate's rule messages are written for any count ("must be at
// least %s characters"), so a required name reads "must be at least 1
// characters". singular matches the count of one in those messages.
var singular = regexp.MustCompile(`\b(at (?:least|most)|exactly) 1 (character|byte|item)s\b`)

// Singular rewrites protovalidate's "1 characters" (and bytes, items) as
// "1 character".
func Singular(msg string) string { return singular.ReplaceAllString(msg, "$1 1 $2") }

// NewGrammarInterceptor returns a handler interceptor that corrects the
// grammar of the validation errors the interceptors after it return: the
// message and each violation in a buf.validate.Violations detail. It goes
// just before input's and protovalidate's interceptors.
func NewGrammarInterceptor() connect.Interceptor { return grammar{} }

type grammar struct{}

func (grammar) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		resp, err := next(ctx, req)
		if err != nil && !req.Spec().IsClient {
			err = fixGrammar(err)
		}
		return resp, err
	}
}

func (grammar) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (grammar) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// fixGrammar returns err, or an equal INVALID_ARGUMENT error with its
// messages corrected when they need it.
func fixGrammar(err error) error {
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Code() != connect.CodeInvalidArgument || !singular.MatchString(cerr.Message()) {
		return err
	}
	out := connect.NewError(cerr.Code(), errors.New(Singular(cerr.Message())))
	for k, v := range cerr.Meta() {
		out.Meta()[k] = v
	}
	for _, d := range cerr.Details() {
		msg, derr := d.Value()
		vs, ok := msg.(*validate.Violations)
		if derr != nil || !ok {
			out.AddDetail(d)
			continue
		}
		for _, v := range vs.GetViolations() {
			v.SetMessage(Singular(v.GetMessage()))
		}
		if fixed, ferr := connect.NewErrorDetail(vs); ferr == nil {
			out.AddDetail(fixed)
		} else {
			out.AddDetail(d)
		}
	}
	return out
}
