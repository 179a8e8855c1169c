// Package codec is Connect's JSON codec with a faster encoder: the same
// bytes as protojson.Marshal, written from a plan computed once per
// message type instead of protojson's general walk (which was a quarter
// of a ListDocuments call's CPU, issue 10). Decoding is protojson's.
//
// A plan covers proto3-style messages of scalars, enums, strings, bytes,
// nested messages, repeated fields, maps, oneofs and the well-known
// Timestamp and Duration. A message type that reaches anything else
// (Any, Struct, wrappers, FieldMask, extensions, groups, enum values with
// options) is encoded by protojson itself, as is any value protojson would
// refuse (invalid UTF-8, an out-of-range timestamp), so its error is
// protojson's too. The test compares both encoders byte for byte over
// every message type in gen/ and a synthetic type with every field kind.
package codec

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// Names under which Connect looks up its JSON codecs.
const (
	NameJSON        = "json"
	NameJSONCharset = "json; charset=utf-8"
)

// HandlerOptions replace Connect's two JSON codecs with this package's.
func HandlerOptions() []connect.HandlerOption {
	return []connect.HandlerOption{connect.WithCodec(New(NameJSON)), connect.WithCodec(New(NameJSONCharset))}
}

// Codec implements connect.Codec (and its MarshalAppend and MarshalStable
// extensions) for protobuf JSON.
type Codec struct{ name string }

// New returns a codec registered under name (NameJSON or NameJSONCharset).
func New(name string) *Codec { return &Codec{name: name} }

// Name implements connect.Codec.
func (c *Codec) Name() string { return c.name }

// IsBinary reports false: the output is text.
func (c *Codec) IsBinary() bool { return false }

// Marshal implements connect.Codec.
func (c *Codec) Marshal(msg any) ([]byte, error) { return c.MarshalAppend(nil, msg) }

// MarshalAppend appends msg's protobuf JSON to dst.
func (c *Codec) MarshalAppend(dst []byte, msg any) ([]byte, error) {
	m, ok := msg.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a proto.Message", msg)
	}
	return AppendJSON(dst, m)
}

// MarshalStable is Marshal compacted, as Connect's own JSON codec does it
// (for GET requests, whose URL must not depend on protojson's spacing).
func (c *Codec) MarshalStable(msg any) ([]byte, error) {
	out, err := c.Marshal(msg)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := json.Compact(&b, out); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Unmarshal implements connect.Codec as Connect's JSON codec does:
// protojson, discarding unknown fields.
func (c *Codec) Unmarshal(data []byte, msg any) error {
	m, ok := msg.(proto.Message)
	if !ok {
		return fmt.Errorf("%T is not a proto.Message", msg)
	}
	if len(data) == 0 {
		return errors.New("zero-length payload is not a valid JSON object")
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(data, m)
}

// AppendJSON appends protojson.Marshal(m)'s exact bytes to dst.
func AppendJSON(dst []byte, m proto.Message) ([]byte, error) {
	r := m.ProtoReflect()
	p := planFor(r.Descriptor())
	if p != nil {
		if out, err := p.append(dst, r); err == nil {
			return out, nil
		}
		// Whatever the plan refused, protojson decides (and words the
		// error).
	}
	return protojson.MarshalOptions{}.MarshalAppend(dst, m)
}

// errFallback makes AppendJSON hand a value to protojson.
var errFallback = errors.New("codec: value needs protojson")

// sep is what protojson writes between elements: a comma, and in some
// binaries a space after it (protojson randomises this per binary so
// nobody relies on its spacing; this package must match it exactly).
var sep = func() string {
	out, err := protojson.Marshal(&structpb.ListValue{Values: []*structpb.Value{structpb.NewNumberValue(1), structpb.NewNumberValue(2)}})
	if err == nil && bytes.Equal(out, []byte("[1, 2]")) {
		return ", "
	}
	return ","
}()

// plans maps a message descriptor (by identity: two descriptors may share
// a name) to its *plan, nil for protojson.
var plans sync.Map

func planFor(md protoreflect.MessageDescriptor) *plan {
	if p, ok := plans.Load(md); ok {
		return p.(*plan)
	}
	b := builder{building: map[protoreflect.FullName]*plan{}, ok: true}
	p := b.build(md)
	if !b.ok {
		p = nil
	}
	plans.Store(md, p)
	return p
}

type wkt int

const (
	wktNone wkt = iota
	wktTimestamp
	wktDuration
)

// plan is how to write one message type.
type plan struct {
	wkt    wkt
	fields []field
	// Timestamp and Duration: their seconds and nanos fields.
	seconds, nanos protoreflect.FieldDescriptor
}

// field is one field's part of a plan.
type field struct {
	fd   protoreflect.FieldDescriptor
	name string // `"jsonName":`, escaped as protojson escapes it
	val  value
	key  value // map keys
}

// value is how to write one singular value of a field (or list element,
// or map value).
type value struct {
	kind  protoreflect.Kind
	enum  []string // names by number, for enums numbered 0..n-1
	enumD protoreflect.EnumValueDescriptors
	msg   *plan
}

type builder struct {
	building map[protoreflect.FullName]*plan
	ok       bool
}

func (b *builder) build(md protoreflect.MessageDescriptor) *plan {
	if p, ok := b.building[md.FullName()]; ok {
		return p // recursive types: finished by the outer call
	}
	p := &plan{}
	b.building[md.FullName()] = p
	switch md.FullName() {
	case "google.protobuf.Timestamp", "google.protobuf.Duration":
		if md.FullName() == "google.protobuf.Timestamp" {
			p.wkt = wktTimestamp
		} else {
			p.wkt = wktDuration
		}
		p.seconds, p.nanos = md.Fields().ByNumber(1), md.Fields().ByNumber(2)
		return p
	}
	if md.ParentFile() != nil && md.ParentFile().Package() == "google.protobuf" || md.ExtensionRanges().Len() > 0 {
		// Every other well-known type has a JSON form of its own;
		// extensions are invisible to a walk over declared fields.
		b.ok = false
		return p
	}
	fds := md.Fields()
	for i := range fds.Len() {
		fd := fds.Get(i)
		name, err := appendString(nil, fd.JSONName())
		if err != nil {
			b.ok = false
			return p
		}
		f := field{fd: fd, name: string(name) + ":"}
		if fd.IsMap() {
			f.key = b.value(fd.MapKey())
			f.val = b.value(fd.MapValue())
		} else {
			f.val = b.value(fd)
		}
		p.fields = append(p.fields, f)
	}
	return p
}

func (b *builder) value(fd protoreflect.FieldDescriptor) value {
	v := value{kind: fd.Kind()}
	switch fd.Kind() {
	case protoreflect.GroupKind:
		b.ok = false
	case protoreflect.MessageKind:
		v.msg = b.build(fd.Message())
	case protoreflect.EnumKind:
		ed := fd.Enum()
		if ed.FullName() == "google.protobuf.NullValue" {
			b.ok = false
		}
		v.enumD = ed.Values()
		dense := true
		for i := range v.enumD.Len() {
			ev := v.enumD.Get(i)
			if o := ev.Options(); o != nil && proto.Size(o) > 0 {
				// An option may rename the value in JSON.
				b.ok = false
			}
			if ev.Number() != protoreflect.EnumNumber(i) {
				dense = false
			}
		}
		if dense {
			for i := range v.enumD.Len() {
				q, _ := appendString(nil, string(v.enumD.Get(i).Name()))
				v.enum = append(v.enum, string(q))
			}
		}
	}
	return v
}

func (p *plan) append(out []byte, m protoreflect.Message) ([]byte, error) {
	switch p.wkt {
	case wktTimestamp:
		return appendTimestamp(out, m.Get(p.seconds).Int(), m.Get(p.nanos).Int())
	case wktDuration:
		return appendDuration(out, m.Get(p.seconds).Int(), m.Get(p.nanos).Int())
	}
	out = append(out, '{')
	first := true
	var err error
	for i := range p.fields {
		f := &p.fields[i]
		if !m.Has(f.fd) {
			continue
		}
		if !first {
			out = append(out, sep...)
		}
		first = false
		out = append(out, f.name...)
		v := m.Get(f.fd)
		switch {
		case f.fd.IsList():
			out, err = f.val.appendList(out, v.List())
		case f.fd.IsMap():
			out, err = f.appendMap(out, v.Map())
		default:
			out, err = f.val.append(out, v)
		}
		if err != nil {
			return nil, err
		}
	}
	return append(out, '}'), nil
}

func (v *value) appendList(out []byte, l protoreflect.List) ([]byte, error) {
	out = append(out, '[')
	var err error
	for i := range l.Len() {
		if i > 0 {
			out = append(out, sep...)
		}
		if out, err = v.append(out, l.Get(i)); err != nil {
			return nil, err
		}
	}
	return append(out, ']'), nil
}

func (f *field) appendMap(out []byte, m protoreflect.Map) ([]byte, error) {
	keys := make([]protoreflect.MapKey, 0, m.Len())
	m.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	// protojson's order: false before true, numbers ascending, strings
	// by bytes.
	slices.SortFunc(keys, func(x, y protoreflect.MapKey) int {
		switch f.key.kind {
		case protoreflect.BoolKind:
			a, b := x.Bool(), y.Bool()
			switch {
			case a == b:
				return 0
			case !a:
				return -1
			}
			return 1
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			a, b := x.Uint(), y.Uint()
			return cmpOrdered(a, b)
		case protoreflect.StringKind:
			a, b := x.String(), y.String()
			return cmpOrdered(a, b)
		default:
			return cmpOrdered(x.Int(), y.Int())
		}
	})
	out = append(out, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			out = append(out, sep...)
		}
		if out, err = appendString(out, k.String()); err != nil {
			return nil, errFallback
		}
		out = append(out, ':')
		if out, err = f.val.append(out, m.Get(k)); err != nil {
			return nil, err
		}
	}
	return append(out, '}'), nil
}

func cmpOrdered[T int64 | uint64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (v *value) append(out []byte, x protoreflect.Value) ([]byte, error) {
	switch v.kind {
	case protoreflect.StringKind:
		out, err := appendString(out, x.String())
		if err != nil {
			return nil, errFallback
		}
		return out, nil
	case protoreflect.MessageKind:
		return v.msg.append(out, x.Message())
	case protoreflect.BoolKind:
		if x.Bool() {
			return append(out, "true"...), nil
		}
		return append(out, "false"...), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return strconv.AppendInt(out, x.Int(), 10), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return strconv.AppendUint(out, x.Uint(), 10), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		out = append(out, '"')
		out = strconv.AppendInt(out, x.Int(), 10)
		return append(out, '"'), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		out = append(out, '"')
		out = strconv.AppendUint(out, x.Uint(), 10)
		return append(out, '"'), nil
	case protoreflect.FloatKind:
		return appendFloat(out, x.Float(), 32), nil
	case protoreflect.DoubleKind:
		return appendFloat(out, x.Float(), 64), nil
	case protoreflect.BytesKind:
		out = append(out, '"')
		out = base64.StdEncoding.AppendEncode(out, x.Bytes())
		return append(out, '"'), nil
	case protoreflect.EnumKind:
		n := x.Enum()
		if v.enum != nil {
			if n >= 0 && int(n) < len(v.enum) {
				return append(out, v.enum[n]...), nil
			}
		} else if ev := v.enumD.ByNumber(n); ev != nil {
			return appendString(out, string(ev.Name()))
		}
		// An unknown number is written as a number.
		return strconv.AppendInt(out, int64(n), 10), nil
	}
	return nil, errFallback
}

// appendFloat writes a float as protojson does (its encoding/json-based
// rules, and quoted names for the non-finite values).
func appendFloat(out []byte, n float64, bitSize int) []byte {
	switch {
	case math.IsNaN(n):
		return append(out, `"NaN"`...)
	case math.IsInf(n, +1):
		return append(out, `"Infinity"`...)
	case math.IsInf(n, -1):
		return append(out, `"-Infinity"`...)
	}
	format := byte('f')
	if abs := math.Abs(n); abs != 0 {
		if bitSize == 64 && (abs < 1e-6 || abs >= 1e21) ||
			bitSize == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	out = strconv.AppendFloat(out, n, format, -1, bitSize)
	if format == 'e' {
		// Clean up e-09 to e-9.
		k := len(out)
		if k >= 4 && out[k-4] == 'e' && out[k-3] == '-' && out[k-2] == '0' {
			out[k-2] = out[k-1]
			out = out[:k-1]
		}
	}
	return out
}

// Timestamp and Duration limits, as protojson checks them.
const (
	minTimestampSeconds = -62135596800 // 0001-01-01T00:00:00Z
	maxTimestampSeconds = 253402300799 // 9999-12-31T23:59:59Z
	maxDurationSeconds  = 315576000000
)

func appendTimestamp(out []byte, secs, nanos int64) ([]byte, error) {
	if secs < minTimestampSeconds || secs > maxTimestampSeconds || nanos < 0 || nanos >= 1e9 {
		return nil, errFallback
	}
	t := time.Unix(secs, 0).UTC()
	out = append(out, '"')
	out = t.AppendFormat(out, "2006-01-02T15:04:05")
	out = appendFraction(out, nanos)
	return append(out, `Z"`...), nil
}

func appendDuration(out []byte, secs, nanos int64) ([]byte, error) {
	if secs < -maxDurationSeconds || secs > maxDurationSeconds || nanos <= -1e9 || nanos >= 1e9 ||
		secs > 0 && nanos < 0 || secs < 0 && nanos > 0 {
		return nil, errFallback
	}
	out = append(out, '"')
	if secs < 0 || nanos < 0 {
		out = append(out, '-')
		secs, nanos = -secs, -nanos
	}
	out = strconv.AppendInt(out, secs, 10)
	out = appendFraction(out, nanos)
	return append(out, `s"`...), nil
}

// appendFraction writes nanos as protojson does: nothing, or 3, 6 or 9
// digits after a point.
func appendFraction(out []byte, nanos int64) []byte {
	if nanos == 0 {
		return out
	}
	digits := 9
	for digits > 3 && nanos%1000 == 0 {
		nanos /= 1000
		digits -= 3
	}
	out = append(out, '.')
	var b [9]byte
	for i := digits - 1; i >= 0; i-- {
		b[i] = byte('0' + nanos%10)
		nanos /= 10
	}
	return append(out, b[:digits]...)
}

// appendString writes s as a JSON string exactly as protojson does: only
// '"', '\\' and control characters are escaped (\b \f \n \r \t, else
// \u00xx in lower case); invalid UTF-8 is an error.
func appendString(out []byte, s string) ([]byte, error) {
	out = append(out, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				return nil, errFallback
			}
			i += n
			continue
		}
		if c >= ' ' && c != '"' && c != '\\' {
			i++
			continue
		}
		out = append(out, s[start:i]...)
		out = append(out, '\\')
		switch c {
		case '"', '\\':
			out = append(out, c)
		case '\b':
			out = append(out, 'b')
		case '\f':
			out = append(out, 'f')
		case '\n':
			out = append(out, 'n')
		case '\r':
			out = append(out, 'r')
		case '\t':
			out = append(out, 't')
		default:
			out = append(out, 'u')
			out = append(out, "0000"[1+(bits.Len32(uint32(c))-1)/4:]...)
			out = strconv.AppendUint(out, uint64(c), 16)
		}
		i++
		start = i
	}
	out = append(out, s[start:]...)
	return append(out, '"'), nil
}
