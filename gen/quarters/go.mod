module github.com/quarters-dev/quarters/gen/quarters

go 1.26.0

require (
	buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go v1.36.12-20260825204119-511051f7f437.2
	connectrpc.com/connect v1.21.1
	google.golang.org/protobuf v1.36.13-0.20261016172727-e9ee2a76ab8e
)
