package codec_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	_ "google.golang.org/protobuf/types/known/durationpb"
	_ "google.golang.org/protobuf/types/known/timestamppb"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/codec"
)

// kinds is a message type with every field kind the plans handle (its
// first field has the highest number: JSON follows declaration order),
// and one with a Struct, which they hand to protojson.
const kinds = `
name: "kinds.proto" package: "codectest" syntax: "proto3"
dependency: ["google/protobuf/timestamp.proto", "google/protobuf/duration.proto", "google/protobuf/struct.proto"]
enum_type { name: "Colour" value { name: "COLOUR_UNSPECIFIED" number: 0 } value { name: "COLOUR_RED" number: 1 } value { name: "COLOUR_BLUE" number: 5 } }
enum_type { name: "Dense" value { name: "DENSE_UNSPECIFIED" number: 0 } value { name: "DENSE_ONE" number: 1 } }
message_type {
  name: "All"
  field { name: "first_declared" number: 37 type: TYPE_BOOL label: LABEL_OPTIONAL }
  field { name: "s" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL }
  field { name: "b" number: 2 type: TYPE_BOOL label: LABEL_OPTIONAL }
  field { name: "i32" number: 3 type: TYPE_INT32 label: LABEL_OPTIONAL }
  field { name: "si32" number: 4 type: TYPE_SINT32 label: LABEL_OPTIONAL }
  field { name: "sf32" number: 5 type: TYPE_SFIXED32 label: LABEL_OPTIONAL }
  field { name: "u32" number: 6 type: TYPE_UINT32 label: LABEL_OPTIONAL }
  field { name: "f32" number: 7 type: TYPE_FIXED32 label: LABEL_OPTIONAL }
  field { name: "i64" number: 8 type: TYPE_INT64 label: LABEL_OPTIONAL }
  field { name: "si64" number: 9 type: TYPE_SINT64 label: LABEL_OPTIONAL }
  field { name: "sf64" number: 10 type: TYPE_SFIXED64 label: LABEL_OPTIONAL }
  field { name: "u64" number: 11 type: TYPE_UINT64 label: LABEL_OPTIONAL }
  field { name: "f64" number: 12 type: TYPE_FIXED64 label: LABEL_OPTIONAL }
  field { name: "fl" number: 13 type: TYPE_FLOAT label: LABEL_OPTIONAL }
  field { name: "db" number: 14 type: TYPE_DOUBLE label: LABEL_OPTIONAL }
  field { name: "by" number: 15 type: TYPE_BYTES label: LABEL_OPTIONAL }
  field { name: "colour" number: 16 type: TYPE_ENUM type_name: ".codectest.Colour" label: LABEL_OPTIONAL }
  field { name: "dense" number: 17 type: TYPE_ENUM type_name: ".codectest.Dense" label: LABEL_OPTIONAL }
  field { name: "ts" number: 18 type: TYPE_MESSAGE type_name: ".google.protobuf.Timestamp" label: LABEL_OPTIONAL }
  field { name: "dur" number: 19 type: TYPE_MESSAGE type_name: ".google.protobuf.Duration" label: LABEL_OPTIONAL }
  field { name: "child" number: 20 type: TYPE_MESSAGE type_name: ".codectest.All" label: LABEL_OPTIONAL }
  field { name: "rs" number: 21 type: TYPE_STRING label: LABEL_REPEATED }
  field { name: "ri64" number: 22 type: TYPE_INT64 label: LABEL_REPEATED }
  field { name: "rdb" number: 23 type: TYPE_DOUBLE label: LABEL_REPEATED }
  field { name: "rcolour" number: 24 type: TYPE_ENUM type_name: ".codectest.Colour" label: LABEL_REPEATED }
  field { name: "rchild" number: 25 type: TYPE_MESSAGE type_name: ".codectest.All" label: LABEL_REPEATED }
  field { name: "rts" number: 26 type: TYPE_MESSAGE type_name: ".google.protobuf.Timestamp" label: LABEL_REPEATED }
  field { name: "ms" number: 27 type: TYPE_MESSAGE type_name: ".codectest.All.MsEntry" label: LABEL_REPEATED }
  field { name: "mi" number: 28 type: TYPE_MESSAGE type_name: ".codectest.All.MiEntry" label: LABEL_REPEATED }
  field { name: "mb" number: 29 type: TYPE_MESSAGE type_name: ".codectest.All.MbEntry" label: LABEL_REPEATED }
  field { name: "mu" number: 30 type: TYPE_MESSAGE type_name: ".codectest.All.MuEntry" label: LABEL_REPEATED }
  field { name: "one_s" number: 31 type: TYPE_STRING label: LABEL_OPTIONAL oneof_index: 0 }
  field { name: "one_child" number: 32 type: TYPE_MESSAGE type_name: ".codectest.All" label: LABEL_OPTIONAL oneof_index: 0 }
  field { name: "one_i32" number: 33 type: TYPE_INT32 label: LABEL_OPTIONAL oneof_index: 0 }
  field { name: "opt_i64" number: 34 type: TYPE_INT64 label: LABEL_OPTIONAL oneof_index: 1 proto3_optional: true }
  field { name: "opt_s" number: 35 type: TYPE_STRING label: LABEL_OPTIONAL oneof_index: 2 proto3_optional: true }
  field { name: "named" number: 36 type: TYPE_STRING label: LABEL_OPTIONAL json_name: "renamed\"Field" }
  nested_type { name: "MsEntry" options { map_entry: true } field { name: "key" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL } field { name: "value" number: 2 type: TYPE_MESSAGE type_name: ".codectest.All" label: LABEL_OPTIONAL } }
  nested_type { name: "MiEntry" options { map_entry: true } field { name: "key" number: 1 type: TYPE_SINT64 label: LABEL_OPTIONAL } field { name: "value" number: 2 type: TYPE_STRING label: LABEL_OPTIONAL } }
  nested_type { name: "MbEntry" options { map_entry: true } field { name: "key" number: 1 type: TYPE_BOOL label: LABEL_OPTIONAL } field { name: "value" number: 2 type: TYPE_ENUM type_name: ".codectest.Colour" label: LABEL_OPTIONAL } }
  nested_type { name: "MuEntry" options { map_entry: true } field { name: "key" number: 1 type: TYPE_UINT32 label: LABEL_OPTIONAL } field { name: "value" number: 2 type: TYPE_BYTES label: LABEL_OPTIONAL } }
  oneof_decl { name: "one" } oneof_decl { name: "_opt_i64" } oneof_decl { name: "_opt_s" }
}
message_type {
  name: "WithStruct"
  field { name: "s" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL }
  field { name: "st" number: 2 type: TYPE_MESSAGE type_name: ".google.protobuf.Struct" label: LABEL_OPTIONAL }
}
`

func kindsFile(t *testing.T) protoreflect.FileDescriptor {
	t.Helper()
	var fdp descriptorpb.FileDescriptorProto
	require.NoError(t, prototext.Unmarshal([]byte(kinds), &fdp))
	fd, err := protodesc.NewFile(&fdp, protoregistry.GlobalFiles)
	require.NoError(t, err)
	return fd
}

var edgeStrings = []string{
	"", "plain", "é ü ñ 日本 😀", "\"quoted\" \\back\\slash/", "<tag> & 'apos'",
	"\x00\x01\x07\x08\x0b\x0c\x0e\x1f\x7f", "\n\r\t\b\f", "\u2028\u2029", "\ufeff", "a\x00b",
	strings.Repeat("long text ", 40),
}

type filler struct{ r *rand.Rand }

func (f filler) str() string {
	if f.r.IntN(3) > 0 {
		return edgeStrings[f.r.IntN(len(edgeStrings))]
	}
	var b strings.Builder
	for range f.r.IntN(12) {
		switch f.r.IntN(4) {
		case 0:
			b.WriteRune(rune(f.r.IntN(0x20)))
		case 1:
			b.WriteRune(rune(0x80 + f.r.IntN(0x800)))
		case 2:
			b.WriteRune(rune(0x10000 + f.r.IntN(0x1000)))
		default:
			b.WriteByte(byte(' ' + f.r.IntN(95)))
		}
	}
	return b.String()
}

func (f filler) float(bits int) float64 {
	edges := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1.5e-7, 1e-6, 1e21, 9.99e20, 1e300, -2.5e-300,
		math.NaN(), math.Inf(1), math.Inf(-1), math.MaxFloat32, math.SmallestNonzeroFloat64}
	v := edges[f.r.IntN(len(edges))]
	if f.r.IntN(2) == 0 {
		v = f.r.NormFloat64() * math.Pow(10, float64(f.r.IntN(40)-20))
	}
	if bits == 32 {
		v = float64(float32(v))
	}
	return v
}

func (f filler) int64() int64 {
	edges := []int64{0, 1, -1, math.MaxInt64, math.MinInt64, math.MaxInt32, math.MinInt32, 1 << 53}
	if f.r.IntN(2) == 0 {
		return edges[f.r.IntN(len(edges))]
	}
	return f.r.Int64() >> f.r.IntN(63)
}

// scalar returns a random value of fd's kind (not message).
func (f filler) scalar(fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(f.str())
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(f.r.IntN(2) == 0)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(f.int64()))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(f.int64()))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(f.int64())
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(f.int64()))
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(f.float(32)))
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(f.float(64))
	case protoreflect.BytesKind:
		b := make([]byte, f.r.IntN(20))
		for i := range b {
			b[i] = byte(f.r.IntN(256))
		}
		return protoreflect.ValueOfBytes(b)
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		if f.r.IntN(5) == 0 {
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(f.r.IntN(200) - 100)) // often unknown
		}
		return protoreflect.ValueOfEnum(vals.Get(f.r.IntN(vals.Len())).Number())
	}
	panic(fd.Kind())
}

// fill sets about half of m's fields, down to depth 3.
func (f filler) fill(m protoreflect.Message, depth int) {
	md := m.Descriptor()
	switch md.FullName() {
	case "google.protobuf.Timestamp", "google.protobuf.Duration":
		secs := f.r.Int64N(253402300799+62135596800) - 62135596800
		if md.FullName() == "google.protobuf.Duration" {
			secs = f.r.Int64N(2*315576000000) - 315576000000
		}
		nanos := []int64{0, 1, 999999999, 123000000, 123456000, 123456789, 500}[f.r.IntN(7)]
		if md.FullName() == "google.protobuf.Duration" && secs < 0 {
			nanos = -nanos
		}
		if f.r.IntN(20) == 0 {
			secs = math.MaxInt64 / 2 // out of range: protojson's error
		}
		m.Set(md.Fields().ByNumber(1), protoreflect.ValueOfInt64(secs))
		m.Set(md.Fields().ByNumber(2), protoreflect.ValueOfInt32(int32(nanos)))
		return
	case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue",
		"google.protobuf.FieldMask", "google.protobuf.Any":
		// protojson's own territory, with rules of their own; leave
		// them empty (still encoded, by protojson).
		return
	}
	fds := md.Fields()
	for i := range fds.Len() {
		fd := fds.Get(i)
		if f.r.IntN(2) == 0 {
			continue
		}
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			for range f.r.IntN(4) {
				if fd.Kind() == protoreflect.MessageKind {
					if depth >= 3 {
						break
					}
					e := l.NewElement()
					f.fill(e.Message(), depth+1)
					l.Append(e)
				} else {
					l.Append(f.scalar(fd))
				}
			}
		case fd.IsMap():
			mm := m.Mutable(fd).Map()
			for range f.r.IntN(4) {
				k := f.scalar(fd.MapKey()).MapKey()
				if fd.MapValue().Kind() == protoreflect.MessageKind {
					if depth >= 3 {
						break
					}
					v := mm.NewValue()
					f.fill(v.Message(), depth+1)
					mm.Set(k, v)
				} else {
					mm.Set(k, f.scalar(fd.MapValue()))
				}
			}
		case fd.Kind() == protoreflect.MessageKind:
			if depth < 3 {
				f.fill(m.Mutable(fd).Message(), depth+1)
			}
		default:
			m.Set(fd, f.scalar(fd))
		}
	}
}

// same fails unless codec.AppendJSON writes protojson.Marshal's bytes for
// m, or fails as protojson does.
func same(t *testing.T, m protoreflect.Message) {
	t.Helper()
	want, werr := protojson.Marshal(m.Interface())
	got, gerr := codec.New(codec.NameJSON).Marshal(m.Interface())
	if werr != nil {
		require.EqualError(t, gerr, werr.Error(), "%s", m.Descriptor().FullName())
		return
	}
	require.NoError(t, gerr)
	if string(want) != string(got) {
		t.Fatalf("%s:\nprotojson: %s\ncodec:     %s", m.Descriptor().FullName(), want, got)
	}
}

func messages(md protoreflect.MessageDescriptors, out *[]protoreflect.MessageDescriptor) {
	for i := range md.Len() {
		if !md.Get(i).IsMapEntry() {
			*out = append(*out, md.Get(i))
		}
		messages(md.Get(i).Messages(), out)
	}
}

// TestSameBytesAsProtojson: for every message type in gen/ (quarters.v1)
// and a synthetic type with every field kind, empty and with 300 random
// fillings each (unicode, escapes, control characters, zero and extreme
// numbers, NaN and infinities, timestamps and durations with nanos and out
// of range, known and unknown enum numbers, repeated fields, maps, oneofs,
// proto3 optional, recursion), the codec's bytes are protojson's.
func TestSameBytesAsProtojson(t *testing.T) {
	t.Parallel()
	var mds []protoreflect.MessageDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage("quarters.v1", func(fd protoreflect.FileDescriptor) bool {
		messages(fd.Messages(), &mds)
		return true
	})
	require.Greater(t, len(mds), 50, "every quarters.v1 message type")
	messages(kindsFile(t).Messages(), &mds)
	r := rand.New(rand.NewPCG(1, 2))
	for _, md := range mds {
		var newMsg func() protoreflect.Message
		if mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); err == nil {
			newMsg = mt.New
		} else {
			newMsg = func() protoreflect.Message { return dynamicpb.NewMessage(md) }
		}
		same(t, newMsg())
		for range 300 {
			m := newMsg()
			filler{r}.fill(m, 0)
			same(t, m)
		}
	}
}

// TestPlanned: the types on the hot path are encoded by plans, and types
// with a Struct go to protojson.
func TestPlanned(t *testing.T) {
	t.Parallel()
	for _, m := range []protoreflect.ProtoMessage{
		&quartersv1.ListDocumentsResponse{}, &quartersv1.GetDocumentResponse{}, &quartersv1.ListProjectsResponse{},
	} {
		require.True(t, codec.Planned(m.ProtoReflect().Descriptor()), "%T", m)
	}
	fd := kindsFile(t)
	require.True(t, codec.Planned(fd.Messages().ByName("All")))
	require.False(t, codec.Planned(fd.Messages().ByName("WithStruct")))
}

// TestUnmarshal: decoding is protojson's, discarding unknown fields.
func TestUnmarshal(t *testing.T) {
	t.Parallel()
	c := codec.New(codec.NameJSON)
	var req quartersv1.ListDocumentsRequest
	require.NoError(t, c.Unmarshal([]byte(`{"pageSize":50,"unknownField":1}`), &req))
	require.Equal(t, int32(50), req.GetPageSize())
	require.Error(t, c.Unmarshal(nil, &req))
	require.Error(t, c.Unmarshal([]byte(`{"pageSize":"x"}`), &req))
}
