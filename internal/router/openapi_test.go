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
