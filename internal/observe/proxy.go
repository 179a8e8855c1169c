package observe

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// TrustedProxies are the peers whose X-Forwarded-For header is believed:
// the load balancers and reverse proxies in front of the server
// (QUARTERS_TRUSTED_PROXIES). The zero value trusts nobody, so the client
// address is always the TCP peer.
type TrustedProxies []netip.Prefix

// ParseTrustedProxies reads a comma-separated list of IP addresses and CIDR
// prefixes ("10.0.0.0/8, 192.0.2.7, fd00::/8"). Empty entries are skipped;
// anything else that is not an address or prefix is an error naming it.
func ParseTrustedProxies(s string) (TrustedProxies, error) {
	var out TrustedProxies
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an IP address nor a CIDR prefix", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Contains reports whether a is one of the trusted proxies.
func (t TrustedProxies) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr is the address of the client that sent r. It is the TCP peer
// unless the peer is a trusted proxy; then X-Forwarded-For is read from
// the right (each proxy appends the address it was called from), skipping
// trusted proxies, and the first untrusted hop is the client. Everything
// left of that hop was written by the client itself and is ignored, so a
// client cannot choose its address by sending the header. If every hop is
// trusted, or a hop cannot be parsed, the last trusted hop is the client:
// the answer errs towards limiting a proxy, never towards believing a
// forged address. It returns the peer as written in RemoteAddr if that is
// not an IP address (a unix socket, a test).
func (t TrustedProxies) ClientAddr(r *http.Request) string {
	host := r.RemoteAddr
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		host = h
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	client := peer.Unmap()
	if len(t) == 0 || !t.Contains(client) {
		return client.String()
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		fields := strings.Split(hops[i], ",")
		for j := len(fields) - 1; j >= 0; j-- {
			hop, ok := parseHop(fields[j])
			if !ok {
				return client.String()
			}
			client = hop
			if !t.Contains(hop) {
				return client.String()
			}
		}
	}
	return client.String()
}

// parseHop reads one X-Forwarded-For entry: an address, possibly with a
// port ("192.0.2.1:4711", "[2001:db8::1]:4711"), as some proxies write it.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}
