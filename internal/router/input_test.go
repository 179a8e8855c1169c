package router_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/input"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// TestNULInStrings: a NUL character in any string of any request, however
// deep (nested messages, lists, map keys), is INVALID_ARGUMENT naming the
// field, never the INTERNAL PostgreSQL's refusal of U+0000 would become.
func TestNULInStrings(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	p := apitest.CreateProject(t, a, "p")
	cases := []struct {
		name  string
		call  func() error
		field string
	}{
		{"top-level", func() error {
			_, err := a.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: "a\x00b"}))
			return err
		}, "name"},
		{"second field", func() error {
			_, err := a.Documents.CreateDocument(ctx, req(&quartersv1.CreateDocumentRequest{ProjectId: p.GetId(), Title: "t", Content: "ship\x00it"}))
			return err
		}, "content"},
		{"nested message", func() error {
			_, err := a.Projects.UpdateProject(ctx, req(&quartersv1.UpdateProjectRequest{
				Project: &quartersv1.Project{Id: p.GetId(), Description: "x\x00"}, UpdateMask: apitest.Mask("description"),
			}))
			return err
		}, "project.description"},
		{"list element", func() error {
			_, err := a.Projects.UpdateProject(ctx, req(&quartersv1.UpdateProjectRequest{
				Project: &quartersv1.Project{Id: p.GetId(), Name: "n"}, UpdateMask: apitest.Mask("name", "desc\x00ription"),
			}))
			return err
		}, "update_mask.paths"},
		{"map key", func() error {
			_, err := s.Platform(t).SetOverrides(ctx, req(&quartersv1.SetOverridesRequest{
				TenantId: a.ID, Overrides: &quartersv1.TenantOverrides{Features: map[string]bool{"ana\x00lytics": true}},
				UpdateMask: apitest.Mask("features"),
			}))
			return err
		}, "overrides.features"},
		{"public RPC", func() error {
			_, err := s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{Slug: "nul-tenant", Name: "N\x00", OwnerEmail: "n@nul.example"}))
			return err
		}, "name"},
		{"sign-in", func() error {
			_, err := s.As("", "", "").Auth.SignIn(ctx, req(&quartersv1.SignInRequest{Email: a.OwnerEmail, Password: "pass\x00word", Tenant: a.Slug}))
			return err
		}, "password"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cerr := apitest.RequireCode(t, c.call(), connect.CodeInvalidArgument)
			require.Contains(t, apitest.Violations(t, cerr), c.field)
			require.Contains(t, cerr.Message(), "must not contain a NUL character")
			var rules []string
			for _, d := range cerr.Details() {
				if v, err := d.Value(); err == nil {
					if vs, ok := v.(*validate.Violations); ok {
						for _, viol := range vs.GetViolations() {
							rules = append(rules, viol.GetRuleId())
						}
					}
				}
			}
			require.Contains(t, rules, input.RuleNoNUL)
		})
	}

	// The request, as curl sends it.
	r, err := http.NewRequest(http.MethodPost, s.URL+"/quarters.v1.ProjectService/CreateProject", strings.NewReader(`{"name":"a\u0000b"}`))
	require.NoError(t, err)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+a.Key)
	resp, err := s.HTTP.Do(r)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, string(body))
	require.Contains(t, string(body), `"code":"invalid_argument"`)

	// Nothing was written.
	list, err := a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
	require.Len(t, list.Msg.GetProjects(), 1)
}

// TestMessages: errors read well. A made-up API key id is "api key not
// found"; a missing role is "value is required", not "must not be in list
// [0]".
func TestMessages(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	_, err := a.Auth.RevokeApiKey(ctx, req(&quartersv1.RevokeApiKeyRequest{Id: "00000000-0000-4000-8000-000000000000"}))
	require.Equal(t, "api key not found", apitest.RequireCode(t, err, connect.CodeNotFound).Message())

	for name, call := range map[string]func() error{
		"CreateApiKey": func() error {
			_, err := a.Auth.CreateApiKey(ctx, req(&quartersv1.CreateApiKeyRequest{Name: "ci"}))
			return err
		},
		"InviteMember": func() error {
			_, err := a.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "x@y.example"}))
			return err
		},
		"UpdateMemberRole": func() error {
			_, err := a.Members.UpdateMemberRole(ctx, req(&quartersv1.UpdateMemberRoleRequest{UserId: a.Owner.GetUser().GetId()}))
			return err
		},
	} {
		cerr := apitest.RequireCode(t, call(), connect.CodeInvalidArgument)
		require.Equal(t, "validation error: role: value is required", cerr.Message(), name)
		require.Equal(t, []string{"role"}, apitest.Violations(t, cerr), name)
	}
	_, err = a.Auth.CreateApiKey(ctx, req(&quartersv1.CreateApiKeyRequest{Name: "ci", Role: quartersv1.Role(42)}))
	require.Contains(t, apitest.RequireCode(t, err, connect.CodeInvalidArgument).Message(), "role: value must be one of the defined enum values")
}

// TestRequestTooLarge: a body over the limit is INVALID_ARGUMENT naming
// the limit, with HTTP 413 for Connect and no RetryInfo, so no client
// retries it; a small gzip body that inflates past the limit is refused
// the same way. A field over its own limit is a violation naming it.
func TestRequestTooLarge(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	p := apitest.CreateProject(t, a, "big")
	huge := &quartersv1.CreateDocumentRequest{ProjectId: p.GetId(), Title: "huge", Content: strings.Repeat("x", 5<<20)}
	for name, opts := range map[string][]connect.ClientOption{
		"connect":      nil,
		"connect gzip": {connect.WithSendGzip()},
		"grpc":         {connect.WithGRPC()},
		"grpc gzip":    {connect.WithGRPC(), connect.WithSendGzip()},
		"grpc-web":     {connect.WithGRPCWeb()},
	} {
		t.Run(name, func(t *testing.T) {
			c := s.As(a.ID, a.Slug, a.Key, opts...)
			_, err := c.Documents.CreateDocument(ctx, req(huge))
			cerr := apitest.RequireCode(t, err, connect.CodeInvalidArgument)
			require.Contains(t, cerr.Message(), "request too large: the limit is 4194304 bytes")
			for _, d := range cerr.Details() {
				v, err := d.Value()
				require.NoError(t, err)
				_, isRetry := v.(*errdetails.RetryInfo)
				require.False(t, isRetry, "no RetryInfo on a request too large")
			}
		})
	}

	// Over plain HTTP, as curl sees it: 413, not 429.
	r, err := http.NewRequest(http.MethodPost, s.URL+"/quarters.v1.DocumentService/CreateDocument",
		strings.NewReader(`{"projectId":"`+p.GetId()+`","title":"t","content":"`+strings.Repeat("x", 5<<20)+`"}`))
	require.NoError(t, err)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+a.Key)
	resp, err := s.HTTP.Do(r)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, string(body))
	require.Empty(t, resp.Header.Get("Retry-After"))
	var wire struct{ Code, Message string }
	require.NoError(t, json.Unmarshal(body, &wire))
	require.Equal(t, "invalid_argument", wire.Code)

	// A 5 MiB gzip bomb in a few kilobytes: refused when inflation passes
	// the limit. (400, not 413: the body itself was small.)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = io.WriteString(zw, `{"projectId":"`+p.GetId()+`","title":"t","content":"`+strings.Repeat("x", 5<<20)+`"}`)
	require.NoError(t, zw.Close())
	require.Less(t, gz.Len(), 64<<10)
	r, err = http.NewRequest(http.MethodPost, s.URL+"/quarters.v1.DocumentService/CreateDocument", bytes.NewReader(gz.Bytes()))
	require.NoError(t, err)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Content-Encoding", "gzip")
	r.Header.Set("Authorization", "Bearer "+a.Key)
	resp, err = s.HTTP.Do(r)
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, string(body))
	require.Contains(t, string(body), `"code":"invalid_argument"`)
	require.Contains(t, string(body), "request too large")

	// Just over the 1 MiB content limit: a validation error naming the field.
	_, err = a.Documents.CreateDocument(ctx, req(&quartersv1.CreateDocumentRequest{
		ProjectId: p.GetId(), Title: "big", Content: strings.Repeat("x", 1<<20+1),
	}))
	require.Contains(t, apitest.Violations(t, apitest.RequireCode(t, err, connect.CodeInvalidArgument)), "content")
	docs, err := a.Documents.ListDocuments(ctx, req(&quartersv1.ListDocumentsRequest{}))
	require.NoError(t, err)
	require.Empty(t, docs.Msg.GetDocuments(), "nothing half-written")
}

// rawConn dials the test server over TCP.
func rawConn(t *testing.T, s *servertest.Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSlowBody: a client trickling its request body is cut off after the
// body timeout (plus its size allowance) with DEADLINE_EXCEEDED, HTTP 408,
// and the connection closed, instead of holding the connection for a
// minute.
func TestSlowBody(t *testing.T) {
	t.Parallel()
	s := servertest.NewWith(t, &servertest.Opts{BodyTimeout: 300 * time.Millisecond})
	a := s.SignUp(t)
	c := rawConn(t, s)
	body := `{"name":"` + strings.Repeat("x", 100) + `"}`
	_, err := fmt.Fprintf(c, "POST /quarters.v1.ProjectService/CreateProject HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", a.Key, len(body))
	require.NoError(t, err)

	// One byte every 50ms would take 5s; the server answers long before.
	// (The deadline here only keeps a broken server from hanging the test.)
	answered := make(chan *http.Response, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			answered <- resp
		}
		close(answered)
	}()
	var resp *http.Response
trickle:
	for i := range len(body) {
		select {
		case resp = <-answered:
			break trickle
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := c.Write([]byte{body[i]}); err != nil {
			break
		}
	}
	if resp == nil {
		select {
		case resp = <-answered:
		case <-time.After(30 * time.Second):
		}
	}
	require.NotNil(t, resp, "the server waited for the whole trickled body")
	msg, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode, string(msg))
	require.Contains(t, string(msg), `"code":"deadline_exceeded"`)
	require.Contains(t, string(msg), "request body too slow")

	list, err := a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
	require.Empty(t, list.Msg.GetProjects())

	// A body sent at once is not affected, however slow the handler.
	apitest.CreateProject(t, a, "quick")
}

// TestConnectionCap: one address may hold MaxConnsPerIP connections; the
// next is answered 503 at once and closed, and a slot frees up when a
// connection closes.
func TestConnectionCap(t *testing.T) {
	t.Parallel()
	s := servertest.NewWith(t, &servertest.Opts{MaxConnsPerIP: 4})
	var held []net.Conn
	for range 4 {
		held = append(held, rawConn(t, s))
	}
	readAnswer := func(c net.Conn) (*http.Response, error) {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second)) // a broken cap would hang here
		return http.ReadResponse(bufio.NewReader(c), nil)
	}
	over := rawConn(t, s)
	resp, err := readAnswer(over) // answered before it sends anything
	require.NoError(t, err, "a connection over the cap got no answer")
	msg, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	require.Contains(t, string(msg), "too many connections from 127.0.0.1 (the limit is 4 per address)")

	// The held connections work.
	_, err = fmt.Fprintf(held[0], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	resp, err = readAnswer(held[0])
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp.Body.Close()

	// Closing one frees a slot (once the server has seen the close).
	held[1].Close()
	for attempt := 0; ; attempt++ {
		require.Less(t, attempt, 200, "the closed connection's slot never came back")
		c := rawConn(t, s)
		_, err = fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		resp, err := readAnswer(c)
		require.NoError(t, err)
		resp.Body.Close()
		c.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		time.Sleep(10 * time.Millisecond)
	}
}
