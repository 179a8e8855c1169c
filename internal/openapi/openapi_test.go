package openapi_test

import (
	"bytes"
	"compress/gzip"
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

// TestDocsHandler: the page names its script and the document, allows only
// this origin, and the script is served plain and gzipped, the same bytes.
func TestDocsHandler(t *testing.T) {
	h := openapi.DocsHandler()
	do := func(path string, header http.Header) (*http.Response, []byte) {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		for k, v := range header {
			r.Header[k] = v
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		body, err := io.ReadAll(w.Result().Body)
		require.NoError(t, err)
		return w.Result(), body
	}

	resp, page := do("/docs", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Contains(t, string(page), `spec-url="/openapi.yaml"`)
	require.Contains(t, string(page), `src="/docs/redoc.standalone.js"`)
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'")

	resp, js := do("/docs/redoc.standalone.js", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/javascript; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Greater(t, len(js), 100_000)

	resp, gz := do("/docs/redoc.standalone.js", http.Header{"Accept-Encoding": {"gzip, br"}})
	require.Equal(t, "gzip", resp.Header.Get("Content-Encoding"))
	require.Less(t, len(gz), len(js)/2)
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	require.NoError(t, err)
	plain, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.Equal(t, js, plain)

	resp, _ = do("/docs/nope.js", nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}
