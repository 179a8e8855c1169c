module github.com/quarters-dev/quarters/sdk/go

go 1.26.0

require (
	buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go v1.36.12-20260825204119-511051f7f437.2
	connectrpc.com/connect v1.21.1
	github.com/quarters-dev/quarters/gen/quarters v0.0.0
	github.com/stretchr/testify v1.12.1
	google.golang.org/genproto/googleapis/rpc v0.0.0-20261104224025-d1e00e9f33ab
	google.golang.org/protobuf v1.36.13-0.20261016172727-e9ee2a76ab8e
)

require go.yaml.in/yaml/v3 v3.0.5 // indirect

// In this repository the SDK builds against the generated code beside it;
// a release tags gen/quarters and sdk/go together.
replace github.com/quarters-dev/quarters/gen/quarters => ../../gen/quarters
