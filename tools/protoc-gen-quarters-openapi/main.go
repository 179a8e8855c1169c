// Command protoc-gen-quarters-openapi is a buf plugin that writes the
// OpenAPI document of Quarters' Connect endpoints. protoc-gen-connect-openapi
// (run in process, as a library) turns the protos into paths and schemas;
// this plugin then says what that generator cannot know about Quarters:
//
//   - who may call each operation, from the RPC's access rule in the proto
//     (quarters.v1.access): public RPCs get "security: []", platform RPCs the
//     platform key, user-only RPCs an access token, the rest a bearer API
//     key or access token;
//   - the error responses the server really gives, by HTTP status, each a
//     Connect error (added to components/responses);
//   - that the Connect-Protocol-Version header is optional, as the server
//     treats it;
//   - the method's name as each operation's summary.
//
// Options (both required): out= the file to write; base= the base document
// (servers, security schemes, headers), relative to the directory the
// plugin runs in (buf.gen.yaml runs it in tools/).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/sudorandom/protoc-gen-connect-openapi/converter"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/pluginpb"
)

// accessOption is the method option holding an RPC's access rule.
const accessOption = "quarters.v1.access"

func main() {
	var flags flag.FlagSet
	out := flags.String("out", "", "the OpenAPI document to write, relative to the output directory")
	base := flags.String("base", "", "the base OpenAPI document")
	protogen.Options{ParamFunc: flags.Set}.Run(func(p *protogen.Plugin) error {
		p.SupportedFeatures = uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL | pluginpb.CodeGeneratorResponse_FEATURE_SUPPORTS_EDITIONS)
		p.SupportedEditionsMinimum = descriptorpb.Edition_EDITION_PROTO2
		p.SupportedEditionsMaximum = descriptorpb.Edition_EDITION_2024
		if *out == "" || *base == "" {
			return fmt.Errorf("options out= and base= are required")
		}
		doc, err := generate(p, *base)
		if err != nil {
			return err
		}
		g := p.NewGeneratedFile(*out, "")
		_, err = g.Write(doc)
		return err
	})
}

// generate returns the finished document.
func generate(p *protogen.Plugin, basePath string) ([]byte, error) {
	base, err := os.ReadFile(basePath)
	if err != nil {
		return nil, err
	}
	// Only the files buf asked for are documented; the rest (imports)
	// are there to resolve types.
	all, imports, gen := new(protoregistry.Files), new(protoregistry.Files), new(protoregistry.Files)
	for _, f := range p.Files {
		into := imports
		if f.Generate {
			into = gen
		}
		if err := into.RegisterFile(f.Desc); err != nil {
			return nil, err
		}
		if err := all.RegisterFile(f.Desc); err != nil {
			return nil, err
		}
	}
	raw, err := converter.GenerateSingle(
		converter.WithSourceFiles(imports),
		converter.WithFiles(gen),
		converter.WithFormat("yaml"),
		converter.WithBaseOpenAPI(base),
		// The Connect GET of NO_SIDE_EFFECTS RPCs.
		converter.WithAllowGET(true),
		// Not google.api.http: we serve no REST routes.
		converter.WithFeatures("connectrpc", "gnostic", "protovalidate"),
		// Schemas no operation reaches (map entries, unused well-known
		// types) would only be noise in the docs and lint.
		converter.WithTrimUnusedTypes(true),
		// stdout carries the plugin's response: logs go to stderr.
		converter.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
	)
	if err != nil {
		return nil, fmt.Errorf("protoc-gen-connect-openapi: %w", err)
	}
	rules, err := accessRules(p, all)
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return nil, err
	}
	if err := annotate(root.Content[0], rules); err != nil {
		return nil, err
	}
	if err := addResponses(root.Content[0]); err != nil {
		return nil, err
	}
	simplifyDebug(root.Content[0])
	trimSchemas(root.Content[0])
	sortTags(root.Content[0])
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

// rule is what the document needs of an access rule.
type rule struct{ public, platform, user bool }

// accessRules reads every generated method's access rule, keyed by its
// path ("/quarters.v1.ProjectService/ListProjects"). The option's Go type
// lives in the main module, so it is read dynamically from its descriptor.
// A method without a rule is an error: the server refuses to start then.
func accessRules(p *protogen.Plugin, files *protoregistry.Files) (map[string]rule, error) {
	d, err := files.FindDescriptorByName(accessOption)
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", accessOption, err)
	}
	xd, ok := d.(protoreflect.ExtensionDescriptor)
	if !ok {
		return nil, fmt.Errorf("%s is not an extension", accessOption)
	}
	xt := dynamicpb.NewExtensionType(xd)
	types := new(protoregistry.Types)
	if err := types.RegisterExtension(xt); err != nil {
		return nil, err
	}
	rules := map[string]rule{}
	for _, f := range p.Files {
		if !f.Generate {
			continue
		}
		for _, s := range f.Services {
			for _, m := range s.Methods {
				path := "/" + string(s.Desc.FullName()) + "/" + string(m.Desc.Name())
				b, err := proto.Marshal(m.Desc.Options())
				if err != nil {
					return nil, err
				}
				opts := &descriptorpb.MethodOptions{}
				if err := (proto.UnmarshalOptions{Resolver: types}).Unmarshal(b, opts); err != nil {
					return nil, err
				}
				// Found by name: the decoded extension's type is not
				// always the same value as xt.
				var msg protoreflect.Message
				opts.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
					if fd.FullName() == accessOption {
						msg = v.Message()
					}
					return msg == nil
				})
				if msg == nil {
					return nil, fmt.Errorf("%s has no access rule (%s)", path, accessOption)
				}
				get := func(name protoreflect.Name) bool {
					return msg.Get(msg.Descriptor().Fields().ByName(name)).Bool()
				}
				rules[path] = rule{public: get("public"), platform: get("platform"), user: get("user")}
			}
		}
	}
	return rules, nil
}

// errorResponses are the statuses every operation can answer with, added
// to components/responses under name. 413 and 415 concern a request body,
// so only POSTs list them. The codes are connect-go's code-to-status table
// and the server's own statuses (guard's 413 and 408, httperr's 415).
var errorResponses = []struct {
	status, name, description string
	postOnly, rateLimit       bool
}{
	{"400", "InvalidArgument", "invalid_argument (a field fails validation: a buf.validate.Violations detail names it), failed_precondition or out_of_range; also a GET without ?encoding=json&message=.", false, false},
	{"401", "Unauthenticated", "unauthenticated: a missing, malformed, unknown, revoked or expired credential.", false, false},
	{"403", "PermissionDenied", "permission_denied: the credential's role, the plan's features or the tenant's state do not allow the call (an ErrorInfo detail gives the reason).", false, false},
	{"404", "NotFound", "not_found, including ids of another tenant's rows, which behave exactly like ids that never existed.", false, false},
	{"408", "RequestTimeout", "deadline_exceeded: the request body arrived too slowly.", false, false},
	{"409", "Conflict", "already_exists or aborted.", false, false},
	{"413", "RequestTooLarge", "invalid_argument: the request body is over the server's limit (QUARTERS_MAX_BODY_BYTES).", true, false},
	{"415", "UnsupportedMediaType", "invalid_argument: no Content-Type or an unsupported one; send application/json or application/proto.", true, false},
	{"429", "ResourceExhausted", "resource_exhausted: over the rate limit (a RetryInfo detail and Retry-After say when to retry) or a plan quota (a QuotaFailure detail).", false, true},
	{"500", "Internal", "internal (or unknown, data_loss): an unexpected failure, logged under the request id the message names (X-Request-Id).", false, false},
	{"503", "Unavailable", "unavailable: a dependency such as the database is unreachable; retry with backoff.", false, false},
	{"504", "DeadlineExceeded", "deadline_exceeded: the call outran its deadline (Connect-Timeout-Ms or the server's).", false, false},
}

// rateLimitHeaders are the headers of a 429, in components/headers of the
// base document.
var rateLimitHeaders = []string{"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}

// addResponses puts errorResponses into components/responses, each a
// Connect error.
func addResponses(doc *yaml.Node) error {
	components := get(doc, "components")
	if components == nil || get(components, "schemas") == nil || get(get(components, "schemas"), "connect.error") == nil {
		return fmt.Errorf("the document has no components/schemas/connect.error")
	}
	responses := get(components, "responses")
	if responses == nil {
		responses = &yaml.Node{Kind: yaml.MappingNode}
		set(components, "responses", responses)
	}
	for _, e := range errorResponses {
		r := &yaml.Node{Kind: yaml.MappingNode}
		set(r, "description", str(e.description))
		if e.rateLimit {
			headers := &yaml.Node{Kind: yaml.MappingNode}
			for _, h := range rateLimitHeaders {
				set(headers, h, mapping("$ref", str("#/components/headers/"+h)))
			}
			set(r, "headers", headers)
		}
		set(r, "content", mapping("application/json", mapping("schema", mapping("$ref", str("#/components/schemas/connect.error")))))
		set(responses, e.name, r)
	}
	return nil
}

// annotate sets each operation's security, error responses and optional
// protocol header.
func annotate(doc *yaml.Node, rules map[string]rule) error {
	paths := get(doc, "paths")
	if paths == nil {
		return fmt.Errorf("the document has no paths")
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(paths.Content); i += 2 {
		path, item := paths.Content[i].Value, paths.Content[i+1]
		r, ok := rules[path]
		if !ok {
			return fmt.Errorf("%s is documented but has no access rule", path)
		}
		seen[path] = true
		for j := 0; j+1 < len(item.Content); j += 2 {
			method, op := item.Content[j].Value, item.Content[j+1]
			if method != "get" && method != "post" {
				continue
			}
			optionalProtocolHeader(op)
			nameSummary(op, path[strings.LastIndex(path, "/")+1:])
			set(op, "security", security(r))
			responses := get(op, "responses")
			if responses == nil {
				return fmt.Errorf("%s %s has no responses", method, path)
			}
			del(responses, "default")
			for _, e := range errorResponses {
				if e.postOnly && method != "post" {
					continue
				}
				set(responses, e.status, mapping("$ref", str("#/components/responses/"+e.name)))
			}
			sortResponses(responses)
		}
	}
	var missing []string
	for p := range rules {
		if !seen[p] {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("not documented: %s", strings.Join(missing, ", "))
	}
	return nil
}

// security is an operation's security requirement: none for a public RPC
// (a credential, if sent, is still checked), else the one credential kind
// it accepts.
func security(r rule) *yaml.Node {
	list := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	scheme := "bearer"
	switch {
	case r.public:
		return list
	case r.platform:
		scheme = "platformKey"
	case r.user:
		scheme = "accessToken"
	}
	list.Style = 0
	list.Content = append(list.Content, mapping(scheme, &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}))
	return list
}

// nameSummary makes the method's name the operation's summary, the title
// renderers list operations by; protoc-gen-connect-openapi uses a
// comment's first paragraph when it has several, which reads as a wall of
// text in a sidebar. That paragraph goes back in front of the description.
func nameSummary(op *yaml.Node, name string) {
	summary := get(op, "summary")
	if summary == nil || summary.Value == name {
		return
	}
	if d := get(op, "description"); d != nil {
		d.Value = summary.Value + "\n\n" + d.Value
	} else {
		set(op, "description", str(summary.Value))
	}
	summary.Value, summary.Style = name, 0
}

// optionalProtocolHeader drops "required" from the Connect-Protocol-Version
// header: the server accepts calls without it, as curl users send them.
func optionalProtocolHeader(op *yaml.Node) {
	params := get(op, "parameters")
	if params == nil {
		return
	}
	for _, p := range params.Content {
		if n := get(p, "name"); n != nil && n.Value == "Connect-Protocol-Version" {
			del(p, "required")
		}
	}
}

// sortResponses orders a responses map by status, 200 first.
func sortResponses(responses *yaml.Node) {
	type pair struct{ k, v *yaml.Node }
	var pairs []pair
	for i := 0; i+1 < len(responses.Content); i += 2 {
		pairs = append(pairs, pair{responses.Content[i], responses.Content[i+1]})
	}
	sort.SliceStable(pairs, func(a, b int) bool { return pairs[a].k.Value < pairs[b].k.Value })
	responses.Content = responses.Content[:0]
	for _, p := range pairs {
		responses.Content = append(responses.Content, p.k, p.v)
	}
}

// simplifyDebug makes an error detail's debug field its one schema: a
// oneOf of one inline schema with a discriminator that cannot select it
// is what OpenAPI lints flag, and the type field still says what the
// detail is.
func simplifyDebug(doc *yaml.Node) {
	props := get(get(get(get(doc, "components"), "schemas"), "connect.error_details.Any"), "properties")
	debug := get(props, "debug")
	one := get(debug, "oneOf")
	if one == nil || len(one.Content) != 1 {
		return
	}
	merged := one.Content[0]
	for i := 0; i+1 < len(debug.Content); i += 2 {
		if k := debug.Content[i].Value; k != "oneOf" && k != "discriminator" {
			set(merged, k, debug.Content[i+1])
		}
	}
	set(props, "debug", merged)
}

// trimSchemas deletes the schemas nothing refers to, directly or through
// other schemas (protoc-gen-connect-openapi keeps map entries and
// well-known types that no field uses).
func trimSchemas(doc *yaml.Node) {
	schemas := get(get(doc, "components"), "schemas")
	if schemas == nil {
		return
	}
	const prefix = "#/components/schemas/"
	used := map[string]bool{}
	var queue []*yaml.Node
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			if ref := get(n, "$ref"); ref != nil && strings.HasPrefix(ref.Value, prefix) {
				name := strings.TrimPrefix(ref.Value, prefix)
				if !used[name] {
					used[name] = true
					if s := get(schemas, name); s != nil {
						queue = append(queue, s)
					}
				}
			}
		}
		for _, c := range n.Content {
			if c != schemas {
				walk(c)
			}
		}
	}
	walk(doc)
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		walk(n)
	}
	kept := schemas.Content[:0]
	for i := 0; i+1 < len(schemas.Content); i += 2 {
		if used[schemas.Content[i].Value] {
			kept = append(kept, schemas.Content[i], schemas.Content[i+1])
		}
	}
	schemas.Content = kept
}

// sortTags orders the tags (one per service) by name: the converter lists
// them in the order of its file registry, which is not stable from run to
// run, and CI compares the document byte for byte.
func sortTags(doc *yaml.Node) {
	tags := get(doc, "tags")
	if tags == nil {
		return
	}
	name := func(n *yaml.Node) string {
		if v := get(n, "name"); v != nil {
			return v.Value
		}
		return ""
	}
	sort.SliceStable(tags.Content, func(a, b int) bool { return name(tags.Content[a]) < name(tags.Content[b]) })
}

func get(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func set(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

func del(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func mapping(key string, v *yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v}}
}
