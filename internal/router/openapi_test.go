package router_test

import (
	"io"
	"net/http"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/assert/yaml"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/quarters-dev/quarters/internal/access"
	"github.com/quarters-dev/quarters/internal/openapi"
	"github.com/quarters-dev/quarters/internal/router"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// TestOpenAPI: GET /openapi.yaml needs no credential and documents exactly
// the served procedures, each as a Connect POST, and the NO_SIDE_EFFECTS
// ones also as a Connect GET.
func TestOpenAPI(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)

	resp, err := s.HTTP.Get(s.URL + "/openapi.yaml")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, "application/yaml", resp.Header.Get("Content-Type"))

	type operation struct {
		OperationID string `yaml:"operationId"`
	}
	var doc struct {
		OpenAPI string `yaml:"openapi"`
		Info    struct {
			Title   string `yaml:"title"`
			Version string `yaml:"version"`
		} `yaml:"info"`
		Paths map[string]map[string]operation `yaml:"paths"`
	}
	require.NoError(t, yaml.Unmarshal(body, &doc))
	require.Equal(t, "3.1.0", doc.OpenAPI)
	require.Equal(t, "Quarters API", doc.Info.Title)
	require.Equal(t, "v1", doc.Info.Version)

	var served []string
	for _, svc := range router.Services() {
		methods := svc.Methods()
		for i := range methods.Len() {
			m := methods.Get(i)
			path := "/" + string(svc.FullName()) + "/" + string(m.Name())
			served = append(served, path)
			item, ok := doc.Paths[path]
			if !assert.Truef(t, ok, "%s is not documented", path) {
				continue
			}
			post, ok := item["post"]
			assert.Truef(t, ok, "%s has no POST", path)
			assert.Equalf(t, string(m.FullName()), post.OperationID, "%s POST operationId", path)
			idem := m.Options().(*descriptorpb.MethodOptions).GetIdempotencyLevel()
			_, hasGet := item["get"]
			assert.Equalf(t, idem == descriptorpb.MethodOptions_NO_SIDE_EFFECTS, hasGet,
				"%s: idempotency %v, GET documented", path, idem)
		}
	}
	documented := make([]string, 0, len(doc.Paths))
	for p := range doc.Paths {
		documented = append(documented, p)
	}
	sort.Strings(served)
	sort.Strings(documented)
	require.Equal(t, served, documented, "the document lists exactly the served procedures")
}

// TestOpenAPISecurity: the document says who may call each operation as
// the access rules do (public RPCs need nothing, platform RPCs the platform
// key, user RPCs an access token, the rest a bearer API key or access
// token), that Connect-Protocol-Version is optional, which servers and
// schemes there are, and the Connect errors each operation can answer.
func TestOpenAPISecurity(t *testing.T) {
	t.Parallel()
	type operation struct {
		Security   []map[string][]string `yaml:"security"`
		Parameters []struct {
			Name     string `yaml:"name"`
			Required bool   `yaml:"required"`
		} `yaml:"parameters"`
		Responses map[string]struct {
			Ref string `yaml:"$ref"`
		} `yaml:"responses"`
	}
	var doc struct {
		Servers []struct {
			URL string `yaml:"url"`
		} `yaml:"servers"`
		Components struct {
			SecuritySchemes map[string]struct {
				Type   string `yaml:"type"`
				Scheme string `yaml:"scheme"`
			} `yaml:"securitySchemes"`
			Responses map[string]struct {
				Content map[string]struct {
					Schema struct {
						Ref string `yaml:"$ref"`
					} `yaml:"schema"`
				} `yaml:"content"`
			} `yaml:"responses"`
			Schemas map[string]struct {
				Properties map[string]struct {
					Enum []string `yaml:"enum"`
				} `yaml:"properties"`
			} `yaml:"schemas"`
		} `yaml:"components"`
		Paths map[string]map[string]operation `yaml:"paths"`
	}
	require.NoError(t, yaml.Unmarshal(openapi.Document(), &doc))
	require.NotEmpty(t, doc.Servers)
	require.Equal(t, "/", doc.Servers[0].URL)
	for _, name := range []string{"bearer", "accessToken", "platformKey"} {
		require.Equal(t, "http", doc.Components.SecuritySchemes[name].Type, name)
		require.Equal(t, "bearer", doc.Components.SecuritySchemes[name].Scheme, name)
	}
	require.Contains(t, doc.Components.Schemas["connect.error"].Properties["code"].Enum, "resource_exhausted")
	for name, r := range doc.Components.Responses {
		require.Equal(t, "#/components/schemas/connect.error", r.Content["application/json"].Schema.Ref, name)
	}

	rules, err := access.RulesFor(router.Services()...)
	require.NoError(t, err)
	var public, platform, user int
	for path, rule := range rules {
		want := []map[string][]string{{"bearer": {}}}
		switch {
		case rule.GetPublic():
			want = []map[string][]string{}
			public++
		case rule.GetPlatform():
			want = []map[string][]string{{"platformKey": {}}}
			platform++
		case rule.GetUser():
			want = []map[string][]string{{"accessToken": {}}}
			user++
		}
		for method, op := range doc.Paths[path] {
			require.NotNilf(t, op.Security, "%s %s has no security", method, path)
			assert.Equalf(t, want, op.Security, "%s %s", method, path)
			for _, p := range op.Parameters {
				if p.Name == "Connect-Protocol-Version" {
					assert.Falsef(t, p.Required, "%s %s: Connect-Protocol-Version is optional", method, path)
				}
			}
			assert.Equalf(t, "#/components/responses/Unauthenticated", op.Responses["401"].Ref, "%s %s", method, path)
			assert.Equalf(t, "#/components/responses/ResourceExhausted", op.Responses["429"].Ref, "%s %s", method, path)
			assert.Equalf(t, "#/components/responses/InvalidArgument", op.Responses["400"].Ref, "%s %s", method, path)
			_, hasDefault := op.Responses["default"]
			assert.Falsef(t, hasDefault, "%s %s lists its errors, not a default", method, path)
		}
	}
	require.Positive(t, public, "some RPCs are public (sign-up)")
	require.Positive(t, platform)
	require.Positive(t, user)
	// Sign-up is public in the document, as in its rule.
	require.Equal(t, []map[string][]string{}, doc.Paths["/quarters.v1.TenantService/CreateTenant"]["post"].Security)
}
