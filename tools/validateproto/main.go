// Command validateproto prints protovalidate's buf/validate/validate.proto
// from the file descriptor compiled into the pinned Go module. The Buf Schema
// Registry is unreachable where Quarters is built, and no Go or npm package
// ships the .proto file itself, so the descriptor is the source of truth.
// CI re-runs this and fails if the committed copy differs.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"github.com/jhump/protoreflect/desc"
	"github.com/jhump/protoreflect/desc/protoprint"
)

func main() {
	out := flag.String("out", "api/buf/validate/validate.proto", "file to write")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "validateproto:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	fd, err := desc.WrapFile(validate.File_buf_validate_validate_proto)
	if err != nil {
		return fmt.Errorf("wrap descriptor: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	printer := protoprint.Printer{Compact: false, SortElements: false}
	if err := printer.PrintProtoFile(fd, f); err != nil {
		f.Close()
		return fmt.Errorf("print: %w", err)
	}
	return f.Close()
}
