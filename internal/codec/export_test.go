package codec

import "google.golang.org/protobuf/reflect/protoreflect"

// Planned reports whether md is encoded by a plan rather than protojson.
func Planned(md protoreflect.MessageDescriptor) bool { return planFor(md) != nil }
