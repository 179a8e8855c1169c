package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/internal/console"
)

func get(t *testing.T, h http.Handler, method, target string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	return string(b)
}

func TestServesPageAndAssets(t *testing.T) {
	t.Parallel()
	h := console.Handler()
	cases := []struct {
		target, contentType, contains string
	}{
		{"/console", "text/html; charset=utf-8", `<script type="module" src="/console/console.js">`},
		{"/console/", "text/html; charset=utf-8", `<link rel="stylesheet" href="/console/console.css">`},
		{"/console/index.html", "text/html; charset=utf-8", `<div id="app">`},
		// The app's own routes: a reload or a shared link gets the page.
		{"/console/keys", "text/html; charset=utf-8", `<div id="app">`},
		{"/console/projects/0b8f6a52-3c0e-4a57-9d43-3f0e2a6f0d9b", "text/html; charset=utf-8", `<div id="app">`},
		{"/console/console.js", "text/javascript; charset=utf-8", "quarters.console.session"},
		{"/console/console.css", "text/css; charset=utf-8", ".chart"},
	}
	for _, c := range cases {
		t.Run(c.target, func(t *testing.T) {
			t.Parallel()
			r := get(t, h, http.MethodGet, c.target)
			require.Equal(t, http.StatusOK, r.StatusCode)
			require.Equal(t, c.contentType, r.Header.Get("Content-Type"))
			require.Equal(t, console.ContentSecurityPolicy, r.Header.Get("Content-Security-Policy"))
			require.Equal(t, "nosniff", r.Header.Get("X-Content-Type-Options"))
			require.Equal(t, "no-cache", r.Header.Get("Cache-Control"))
			require.NotEmpty(t, r.Header.Get("ETag"))
			// Not require.Contains: it would print the whole bundle.
			require.True(t, strings.Contains(body(t, r), c.contains), "%s lacks %q", c.target, c.contains)
		})
	}
}

func TestPolicyAllowsNoInlineCode(t *testing.T) {
	t.Parallel()
	csp := console.ContentSecurityPolicy
	for _, directive := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		require.Contains(t, csp, directive)
	}
	require.NotContains(t, csp, "unsafe-inline")
	require.NotContains(t, csp, "unsafe-eval")
	// And the page needs none: no inline script or style in index.html.
	page := body(t, get(t, console.Handler(), http.MethodGet, "/console/"))
	require.NotContains(t, page, "<style")
	require.NotContains(t, page, "style=")
	require.Equal(t, 1, strings.Count(page, "<script"))
	require.Contains(t, page, `<script type="module" src="/console/console.js"></script>`)
}

func TestMissingAssetIsNotFound(t *testing.T) {
	t.Parallel()
	r := get(t, console.Handler(), http.MethodGet, "/console/old-build.js")
	require.Equal(t, http.StatusNotFound, r.StatusCode)
	require.Contains(t, body(t, r), "old-build.js")
}

func TestRevalidatesWithETag(t *testing.T) {
	t.Parallel()
	h := console.Handler()
	first := get(t, h, http.MethodGet, "/console/console.js")
	req := httptest.NewRequest(http.MethodGet, "/console/console.js", nil)
	req.Header.Set("If-None-Match", first.Header.Get("ETag"))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusNotModified, rec.Code)
}

func TestOnlyReads(t *testing.T) {
	t.Parallel()
	r := get(t, console.Handler(), http.MethodPost, "/console/")
	require.Equal(t, http.StatusMethodNotAllowed, r.StatusCode)
	require.Equal(t, "GET, HEAD", r.Header.Get("Allow"))
	head := get(t, console.Handler(), http.MethodHead, "/console/")
	require.Equal(t, http.StatusOK, head.StatusCode)
}
