package openapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/internal/openapi"
)

// TestHandler: the document with its media type, a HEAD without a body, and
// a 304 for a client that already has this version.
func TestHandler(t *testing.T) {
	h := openapi.Handler()
	do := func(method string, header http.Header) *http.Response {
		r := httptest.NewRequest(method, "/openapi.yaml", nil)
		for k, v := range header {
			r.Header[k] = v
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Result()
	}

	resp := do(http.MethodGet, nil)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, openapi.ContentType, resp.Header.Get("Content-Type"))
	require.Equal(t, openapi.Document(), body)
	require.Contains(t, string(body), "openapi: 3.1.0")
	etag := resp.Header.Get("ETag")
	require.NotEmpty(t, etag)

	resp = do(http.MethodHead, nil)
	body, _ = io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, body)

	resp = do(http.MethodGet, http.Header{"If-None-Match": {etag}})
	require.Equal(t, http.StatusNotModified, resp.StatusCode)
}
