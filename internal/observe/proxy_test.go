package observe_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/internal/observe"
)

func TestParseTrustedProxies(t *testing.T) {
	p, err := observe.ParseTrustedProxies(" 10.0.0.0/8, 192.0.2.7 ,, fd00::/8, ::ffff:198.51.100.1")
	require.NoError(t, err)
	require.Len(t, p, 4)
	for _, bad := range []string{"10.0.0.0/33", "proxy.example", "10.0.0.1-10.0.0.9"} {
		_, err := observe.ParseTrustedProxies(bad)
		require.ErrorContains(t, err, bad)
	}
	empty, err := observe.ParseTrustedProxies("")
	require.NoError(t, err)
	require.Empty(t, empty)
}

// TestClientAddr: X-Forwarded-For is read only from a trusted peer, from
// the right, and stops at the first untrusted hop.
func TestClientAddr(t *testing.T) {
	trusted, err := observe.ParseTrustedProxies("10.0.0.0/8, 2001:db8:ffff::/48")
	require.NoError(t, err)
	cases := []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"no proxy", "203.0.113.5:4711", nil, "203.0.113.5"},
		{"untrusted peer's header ignored", "203.0.113.5:4711", []string{"198.51.100.1"}, "203.0.113.5"},
		{"one proxy", "10.0.0.2:80", []string{"203.0.113.5"}, "203.0.113.5"},
		{"forged left part ignored", "10.0.0.2:80", []string{"1.2.3.4, 203.0.113.5"}, "203.0.113.5"},
		{"proxy chain", "10.0.0.2:80", []string{"1.2.3.4, 203.0.113.5, 10.9.9.9"}, "203.0.113.5"},
		{"several headers", "10.0.0.2:80", []string{"1.2.3.4", "203.0.113.5", "10.1.1.1"}, "203.0.113.5"},
		{"hop with port", "10.0.0.2:80", []string{"203.0.113.5:5555"}, "203.0.113.5"},
		{"ipv6 hop with port", "10.0.0.2:80", []string{"[2001:db8::7]:5555"}, "2001:db8::7"},
		{"all hops trusted", "10.0.0.2:80", []string{"10.3.3.3, 10.4.4.4"}, "10.3.3.3"},
		{"garbage hop: the proxy that wrote it", "10.0.0.2:80", []string{"203.0.113.5, not-an-ip, 10.4.4.4"}, "10.4.4.4"},
		{"no header from a proxy", "10.0.0.2:80", nil, "10.0.0.2"},
		{"ipv6 proxy", "[2001:db8:ffff::1]:80", []string{"2001:db8:1::9"}, "2001:db8:1::9"},
		{"mapped peer", "[::ffff:10.0.0.2]:80", []string{"203.0.113.5"}, "203.0.113.5"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := http.NewRequest(http.MethodPost, "http://x/", nil)
			require.NoError(t, err)
			r.RemoteAddr = c.peer
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			require.Equal(t, c.want, trusted.ClientAddr(r))
		})
	}
}

func TestClientAddrTrustsNobodyByDefault(t *testing.T) {
	r, err := http.NewRequest(http.MethodPost, "http://x/", nil)
	require.NoError(t, err)
	r.RemoteAddr = "10.0.0.2:80"
	r.Header.Set("X-Forwarded-For", "203.0.113.5")
	require.Equal(t, "10.0.0.2", observe.TrustedProxies(nil).ClientAddr(r))
}
