package webhook

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPostReadsAtMostTheCap: a receiver that streams without end cannot
// hold the worker: post reads MaxResponseBytes and returns the status.
func TestPostReadsAtMostTheCap(t *testing.T) {
	t.Parallel()
	chunk := make([]byte, 32<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	code, err := post(context.Background(), NewClient(&ClientOpts{AllowLoopback: true}), srv.URL, http.Header{}, []byte(`{}`))
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, code)
}
