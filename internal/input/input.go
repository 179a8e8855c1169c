// Package input holds the checks every request message gets, whatever its
// contract says: today, that no string anywhere in it contains a NUL
// character. PostgreSQL cannot store U+0000 in text, so such a string
// would fail deep in a query as an opaque INTERNAL; here it is refused up
// front as INVALID_ARGUMENT naming the field, in the same shape as
// protovalidate's violations. The walk is reflective, so new fields,
// nested messages, lists and maps are covered without a rule per field.
package input

import (
	"context"
	"errors"
	"strings"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"connectrpc.com/connect"
	"github.com/quarters-dev/quarters/internal/apierr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// RuleNoNUL is the rule id of a NUL-character violation.
const RuleNoNUL = "string.no_nul"

const noNULMessage = "must not contain a NUL character (U+0000)"

// Check returns a *protovalidate.ValidationError listing every string in
// msg (map keys included) that contains a NUL character, or nil.
func Check(msg proto.Message) error {
	var w walker
	w.message(msg.ProtoReflect(), nil)
	if len(w.violations) == 0 {
		return nil
	}
	return &protovalidate.ValidationError{Violations: w.violations}
}

type walker struct {
	violations []*protovalidate.Violation
}

func (w *walker) message(m protoreflect.Message, path []*validate.FieldPathElement) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		el := element(fd)
		switch {
		case fd.IsList():
			list := v.List()
			for i := range list.Len() {
				e := proto.CloneOf(el)
				e.SetIndex(uint64(i))
				w.value(fd, list.Get(i), append(path, e), false)
			}
		case fd.IsMap():
			e0 := el
			e0.SetKeyType(kind(fd.MapKey()))
			e0.SetValueType(kind(fd.MapValue()))
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				e := proto.CloneOf(e0)
				switch fd.MapKey().Kind() {
				case protoreflect.StringKind:
					e.SetStringKey(k.String())
					if strings.ContainsRune(k.String(), 0) {
						w.add(append(path, e), true)
					}
				case protoreflect.BoolKind:
					e.SetBoolKey(k.Bool())
				case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
					e.SetUintKey(k.Uint())
				default:
					e.SetIntKey(k.Int())
				}
				w.value(fd.MapValue(), mv, append(path, e), false)
				return true
			})
		default:
			w.value(fd, v, append(path, el), false)
		}
		return true
	})
}

// value checks one singular value of field fd (a list element or map
// value counts as singular here).
func (w *walker) value(fd protoreflect.FieldDescriptor, v protoreflect.Value, path []*validate.FieldPathElement, forKey bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if strings.ContainsRune(v.String(), 0) {
			w.add(path, forKey)
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		// A fresh slice: siblings must not share the backing array.
		w.message(v.Message(), append([]*validate.FieldPathElement(nil), path...))
	}
}

func (w *walker) add(path []*validate.FieldPathElement, forKey bool) {
	v := &validate.Violation{}
	v.SetField(validate.FieldPath_builder{Elements: append([]*validate.FieldPathElement(nil), path...)}.Build())
	v.SetRuleId(RuleNoNUL)
	v.SetMessage(noNULMessage)
	if forKey {
		v.SetForKey(true)
	}
	w.violations = append(w.violations, &protovalidate.Violation{Proto: v})
}

func element(fd protoreflect.FieldDescriptor) *validate.FieldPathElement {
	e := &validate.FieldPathElement{}
	e.SetFieldNumber(int32(fd.Number()))
	e.SetFieldName(fieldName(fd))
	e.SetFieldType(kind(fd))
	return e
}

// fieldName is how protovalidate names a field in a path: extensions in
// brackets.
func fieldName(fd protoreflect.FieldDescriptor) string {
	if fd.IsExtension() {
		return "[" + string(fd.FullName()) + "]"
	}
	return string(fd.Name())
}

func kind(fd protoreflect.FieldDescriptor) descriptorpb.FieldDescriptorProto_Type {
	return descriptorpb.FieldDescriptorProto_Type(fd.Kind())
}

// NewInterceptor returns a handler interceptor that refuses, with
// INVALID_ARGUMENT and a buf.validate.Violations detail, any request
// message Check objects to. It goes just before protovalidate's, which
// reports its own violations in the same shape.
func NewInterceptor() connect.Interceptor { return interceptor{} }

type interceptor struct{}

func (interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if !req.Spec().IsClient {
			if err := refuse(req.Any()); err != nil {
				return nil, err
			}
		}
		return next(ctx, req)
	}
}

func (interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		return next(ctx, checkedConn{conn})
	}
}

// checkedConn checks each message a stream receives.
type checkedConn struct{ connect.StreamingHandlerConn }

func (c checkedConn) Receive(msg any) error {
	if err := c.StreamingHandlerConn.Receive(msg); err != nil {
		return err
	}
	return refuse(msg)
}

func refuse(msg any) error {
	m, ok := msg.(proto.Message)
	if !ok {
		return nil
	}
	err := Check(m)
	if err == nil {
		return nil
	}
	var verr *protovalidate.ValidationError
	if errors.As(err, &verr) {
		return apierr.Violations(err, verr.ToProto())
	}
	return connect.NewError(connect.CodeInvalidArgument, err)
}
