package httperr_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/internal/httperr"
)

// TestUnescape: HTML escapes in strings become their characters; an
// escaped backslash before "u003c", other escapes and text outside strings
// stay as they were, and the document still decodes to the same value.
func TestUnescape(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`{"message":"Bearer \u003ckey\u003e \u0026 more"}`: `{"message":"Bearer <key> & more"}`,
		`{"m":"\\u003c is literal"}`:                       `{"m":"\\u003c is literal"}`,
		`{"m":"quote \" then \u003C"}`:                     `{"m":"quote \" then <"}`,
		`{"m":"\n\u00e9"}`:                                 `{"m":"\n\u00e9"}`,
		`{"a":1}`:                                          `{"a":1}`,
	} {
		got := string(httperr.Unescape([]byte(in)))
		require.Equal(t, want, got, in)
		var a, b any
		require.NoError(t, json.Unmarshal([]byte(in), &a))
		require.NoError(t, json.Unmarshal([]byte(got), &b))
		require.Equal(t, a, b, in)
	}
}

// TestMiddleware: what passes through untouched (successes, streams that
// flush first, JSON errors apart from their escapes) and what is replaced
// (empty and plain-text 404, 405, 415).
func TestMiddleware(t *testing.T) {
	t.Parallel()
	h := httperr.Middleware(httperr.Params{
		IsProcedure: func(path string) bool { return path == "/pkg.Svc/Do" },
		IsService:   func(name string) bool { return name == "pkg.Svc" },
		Catalog:     "/docs",
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			_, _ = w.Write([]byte("fine"))
		case "/stream":
			w.(http.Flusher).Flush()
			_, _ = w.Write([]byte("chunk"))
		case "/json-error":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "99")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"code":"unauthenticated","message":"send \u003ckey\u003e"}`))
		case "/pkg.Svc/Do":
			w.Header().Set("Accept-Post", "application/json")
			w.WriteHeader(http.StatusUnsupportedMediaType)
		default:
			http.NotFound(w, r)
		}
	}))
	do := func(method, path string) (*http.Response, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
		return w.Result(), w.Body.String()
	}

	resp, body := do(http.MethodGet, "/ok")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "fine", body)

	resp, body = do(http.MethodGet, "/stream")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "chunk", body)

	resp, body = do(http.MethodPost, "/json-error")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, `{"code":"unauthenticated","message":"send <key>"}`, body)
	require.Equal(t, strconv.Itoa(len(body)), resp.Header.Get("Content-Length"))

	resp, body = do(http.MethodPost, "/pkg.Svc/Do")
	require.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Accept-Post"), "connect-go's headers are kept")
	var e httperr.Body
	require.NoError(t, json.Unmarshal([]byte(body), &e))
	require.Equal(t, "invalid_argument", e.Code)
	require.Contains(t, e.Message, "no Content-Type is not supported")

	resp, body = do(http.MethodPost, "/pkg.Svc/Undo")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.NoError(t, json.Unmarshal([]byte(body), &e))
	require.Equal(t, "unimplemented", e.Code)
	require.Contains(t, e.Message, "no procedure /pkg.Svc/Undo in pkg.Svc")

	resp, body = do(http.MethodGet, "/elsewhere")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.Empty(t, resp.Header.Get("X-Content-Type-Options"))
	require.NoError(t, json.Unmarshal([]byte(body), &e))
	require.Equal(t, "no such path /elsewhere: RPCs are POST /<package>.<Service>/<Method>, listed in /docs", e.Message)
}
