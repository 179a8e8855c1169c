package router_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/internal/console"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// TestConsoleServed: the tenant console is on the server's mux, needs no
// credential (it signs in itself), carries its Content-Security-Policy,
// and deep links get the page (the app routes them).
func TestConsoleServed(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	for _, path := range []string{"/console", "/console/", "/console/usage", "/console/console.js"} {
		resp, err := s.HTTP.Get(s.URL + path)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.Equal(t, console.ContentSecurityPolicy, resp.Header.Get("Content-Security-Policy"), path)
		require.NotEmpty(t, body, path)
		if path == "/console/console.js" {
			require.Equal(t, "text/javascript; charset=utf-8", resp.Header.Get("Content-Type"))
		} else {
			require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"), path)
			require.Contains(t, string(body), `src="/console/console.js"`, path)
		}
	}
	resp, err := s.HTTP.Get(s.URL + "/console/nope.css")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}
