package webhook_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/internal/webhook"
)

func TestPublic(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"93.184.215.14": true, "8.8.8.8": true, "2606:4700::1111": true,
		"127.0.0.1": false, "127.1.2.3": false, "::1": false,
		"10.0.0.1": false, "172.16.5.4": false, "192.168.1.1": false, "fd00::1": false,
		"169.254.169.254": false, "fd00:ec2::254": false, "fe80::1": false, // metadata, link-local
		"100.64.0.1": false, "0.0.0.0": false, "::": false, "224.0.0.1": false, "255.255.255.255": false,
		"::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "::ffff:8.8.8.8": true,
		"64:ff9b::7f00:1": false, "2002:7f00:1::": false,
	} {
		require.Equal(t, want, webhook.Public(netip.MustParseAddr(addr)), addr)
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		url      string
		loopback bool
		err      string
	}{
		{"https://hooks.example.com/in", false, ""},
		{"http://hooks.example.com/in", false, "url must be https"},
		{"http://hooks.example.com/in", true, "http only to a loopback host"},
		{"http://127.0.0.1:8080/in", false, "url must be https"},
		{"http://127.0.0.1:8080/in", true, ""},
		{"http://localhost:8080/in", true, ""},
		{"https://10.1.2.3/in", false, "not a public address"},
		{"https://[::1]/in", false, "not a public address"},
		{"https://169.254.169.254/latest/meta-data", false, "not a public address"},
		{"https://user:pw@hooks.example.com/", false, "user information"},
		{"ftp://hooks.example.com/", false, "url must be https"},
	} {
		err := webhook.CheckURL(c.url, c.loopback)
		if c.err == "" {
			require.NoError(t, err, c.url)
		} else {
			require.ErrorContains(t, err, c.err, c.url)
		}
	}
}

// TestClientRefusesLoopbackName is the DNS-rebinding case: the URL names
// a host (localhost), and only the address it resolves to, 127.0.0.1 or
// ::1, shows it is internal. The dial-time check refuses it unless
// loopback is allowed.
func TestClientRefusesLoopbackName(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, strings.Repeat("x", 1<<20)) // more than MaxResponseBytes
	}))
	t.Cleanup(srv.Close)
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	ctx := context.Background()
	do := func(c *http.Client, url string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
		require.NoError(t, err)
		return c.Do(req)
	}

	strict := webhook.NewClient(nil)
	for _, url := range []string{"https://localhost:" + port + "/", "https://127.0.0.1:" + port + "/"} {
		_, err := do(strict, url)
		require.ErrorIs(t, err, webhook.ErrAddressRefused, url)
	}
	_, err := do(strict, "http://localhost:"+port+"/") // plain http: no transport at all
	require.ErrorIs(t, err, webhook.ErrAddressRefused)
	require.Zero(t, hits.Load(), "nothing reached the receiver")

	dev := webhook.NewClient(&webhook.ClientOpts{AllowLoopback: true})
	resp, err := do(dev, "http://localhost:"+port+"/")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, int32(1), hits.Load())
}

// TestClientNoRedirects: a 3xx is the answer, not followed.
func TestClientNoRedirects(t *testing.T) {
	t.Parallel()
	var followed atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed.Store(true)
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	c := webhook.NewClient(&webhook.ClientOpts{AllowLoopback: true})
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+"/in", nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode)
	require.False(t, followed.Load())
}
