package router_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// TestHTTPErrors: the answers connect-go and net/http give with an empty
// or plain-text body (415, 405, a bare GET, unknown paths) are Connect
// errors whose message says what to send, with the status kept, and error
// messages carry no HTML escapes.
func TestHTTPErrors(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	const (
		list   = "/quarters.v1.ProjectService/ListProjects"
		create = "/quarters.v1.ProjectService/CreateProject"
	)
	for _, tc := range []struct {
		name, method, path, contentType, auth, body string
		status                                      int
		code                                        string
		says                                        []string
	}{
		{
			name: "no content type", method: http.MethodPost, path: create, auth: a.Key, body: `{"name":"x"}`,
			status: http.StatusUnsupportedMediaType, code: "invalid_argument",
			says: []string{"no Content-Type is not supported", "send Content-Type: application/json or application/proto"},
		},
		{
			name: "wrong content type", method: http.MethodPost, path: create, contentType: "text/plain", auth: a.Key, body: `{}`,
			status: http.StatusUnsupportedMediaType, code: "invalid_argument",
			says: []string{`Content-Type "text/plain" is not supported`, "send Content-Type: application/json or application/proto"},
		},
		{
			name: "public rpc without content type", method: http.MethodPost, path: "/quarters.v1.TenantService/CreateTenant", body: `{}`,
			status: http.StatusUnsupportedMediaType, code: "invalid_argument",
			says: []string{"send Content-Type: application/json"},
		},
		{
			name: "GET on a write", method: http.MethodGet, path: create + "?encoding=json&message=%7B%7D", auth: a.Key,
			status: http.StatusMethodNotAllowed, code: "unimplemented",
			says: []string{create + " has side effects", "POST this method"},
		},
		{
			name: "bare GET on a read", method: http.MethodGet, path: list, auth: a.Key,
			status: http.StatusBadRequest, code: "invalid_argument",
			says: []string{"?encoding=json&message=<URL-encoded JSON request>", "POST it with Content-Type: application/json"},
		},
		{
			name: "GET with an unknown encoding", method: http.MethodGet, path: list + "?encoding=xml&message=x", auth: a.Key,
			status: http.StatusUnsupportedMediaType, code: "invalid_argument",
			says: []string{"encoding=json or encoding=proto"},
		},
		{
			name: "unknown path", method: http.MethodGet, path: "/nope",
			status: http.StatusNotFound, code: "unimplemented",
			says: []string{"no such path /nope", "/docs (and /openapi.yaml)"},
		},
		{
			name: "unknown procedure, no credential", method: http.MethodPost, path: "/quarters.v1.ProjectService/ListProject", contentType: "application/json", body: `{}`,
			status: http.StatusNotFound, code: "unimplemented",
			says: []string{"no procedure /quarters.v1.ProjectService/ListProject in quarters.v1.ProjectService", "spelling"},
		},
		{
			name: "POST to a GET route", method: http.MethodPost, path: "/openapi.yaml",
			status: http.StatusMethodNotAllowed, code: "unimplemented",
			says: []string{"/openapi.yaml does not accept POST: use GET"},
		},
		{
			name: "missing credential, no escapes", method: http.MethodPost, path: list, contentType: "application/json", body: `{}`,
			status: http.StatusUnauthorized, code: "unauthenticated",
			says: []string{`send "Authorization: Bearer <API key or access token>"`},
		},
		{
			name: "Bearer hello is malformed, not expired", method: http.MethodPost, path: list, contentType: "application/json", auth: "hello", body: `{}`,
			status: http.StatusUnauthorized, code: "unauthenticated",
			says: []string{"malformed credential: expected an API key (qk_…) or an access token (JWT)"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := http.NewRequest(tc.method, s.URL+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			if tc.body == "" {
				r.Body = nil
			}
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			if tc.auth != "" {
				r.Header.Set("Authorization", "Bearer "+tc.auth)
			}
			resp, err := s.HTTP.Do(r)
			require.NoError(t, err)
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tc.status, resp.StatusCode, string(raw))
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			assert.NotContains(t, string(raw), `\u003c`)
			assert.NotContains(t, string(raw), `\u003e`)
			var body struct{ Code, Message string }
			require.NoError(t, json.Unmarshal(raw, &body), string(raw))
			require.Equal(t, tc.code, body.Code, body.Message)
			for _, want := range tc.says {
				assert.Contains(t, body.Message, want)
			}
		})
	}
}

// TestValidationGrammar: a required name's violation reads "at least 1
// character", in the message and in the buf.validate.Violations detail.
func TestValidationGrammar(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	_, err := a.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: ""}))
	cerr := apitest.RequireCode(t, err, connect.CodeInvalidArgument)
	require.Contains(t, cerr.Message(), "name: must be at least 1 character")
	require.NotContains(t, cerr.Message(), "1 characters")
	var found bool
	for _, d := range cerr.Details() {
		v, derr := d.Value()
		require.NoError(t, derr)
		if vs, ok := v.(*validate.Violations); ok {
			for _, viol := range vs.GetViolations() {
				if viol.GetRuleId() == "string.min_len" {
					found = true
					require.Equal(t, "must be at least 1 character", viol.GetMessage())
				}
			}
		}
	}
	require.True(t, found, "a string.min_len violation in the details")

	// Counts other than one keep their plural.
	_, err = s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{Slug: "ab", Name: "x", OwnerEmail: "a@b.example", OwnerPassword: servertest.OwnerPassword}))
	cerr = apitest.RequireCode(t, err, connect.CodeInvalidArgument)
	require.Contains(t, cerr.Message(), "slug: must be at least 3 characters")
}
