package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// ClientOpts adjust NewClient; nil means the production defaults.
type ClientOpts struct {
	// AllowLoopback admits loopback addresses, and plain http to them
	// only: for development, where the receiver runs on the same machine.
	// Never in production.
	AllowLoopback bool
	// Timeout bounds one delivery attempt, from dialling to the end of
	// the response (default DefaultTimeout).
	Timeout time.Duration
}

// DefaultTimeout bounds a delivery attempt.
const DefaultTimeout = 15 * time.Second

// MaxResponseBytes is how much of a receiver's response is read: its
// status is what counts, and a hostile receiver must not make the worker
// read forever.
const MaxResponseBytes = 64 << 10

// ErrAddressRefused is the dial error for an address the client may not
// reach (private, loopback, link-local, metadata, …).
var ErrAddressRefused = errors.New("address not allowed for webhooks")

// NewClient returns the HTTP client deliveries use. It refuses, at connect
// time, every resolved address that is not public (so a name that
// resolves, or re-resolves, to an internal address is refused too: the
// check is on the address actually dialled, not on the URL); it follows
// no redirect and uses no proxy from the environment. http URLs are
// refused unless opts allow loopback, and then reach loopback only.
func NewClient(opts *ClientOpts) *http.Client {
	if opts == nil {
		opts = &ClientOpts{}
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	transport := func(allow func(netip.Addr) bool) *http.Transport {
		d := &net.Dialer{
			Timeout: timeout,
			Control: func(_, address string, _ syscall.RawConn) error {
				ap, err := netip.ParseAddrPort(address)
				if err != nil || !allow(ap.Addr()) {
					return fmt.Errorf("%w: %s", ErrAddressRefused, address)
				}
				return nil
			},
		}
		return &http.Transport{
			Proxy:                 nil, // a proxy would dial for us, past the check
			DialContext:           d.DialContext,
			ForceAttemptHTTP2:     true,
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
		}
	}
	rt := &schemeTransport{https: transport(func(a netip.Addr) bool { return Public(a) || (opts.AllowLoopback && a.Unmap().IsLoopback()) })}
	if opts.AllowLoopback {
		rt.http = transport(func(a netip.Addr) bool { return a.Unmap().IsLoopback() })
	}
	return &http.Client{
		Transport: rt,
		Timeout:   timeout,
		// A redirect would send the signed event somewhere the tenant did
		// not register (and past the URL checks); the 3xx is recorded as
		// a failure instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// schemeTransport sends https through one transport and http (loopback
// only, development) through another, and refuses any other scheme.
type schemeTransport struct {
	https, http *http.Transport
}

func (t *schemeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	switch {
	case r.URL.Scheme == "https":
		return t.https.RoundTrip(r)
	case r.URL.Scheme == "http" && t.http != nil:
		return t.http.RoundTrip(r)
	}
	return nil, fmt.Errorf("%w: %s URLs are not delivered to", ErrAddressRefused, r.URL.Scheme)
}

// blocked are ranges that are not reachable on the public internet, or
// that reach the deployment itself, beyond what netip's predicates cover.
var blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT (shared address space)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: embeds any IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4: embeds any IPv4 address
	netip.MustParsePrefix("fd00:ec2::254/128"),
}

// Public reports whether a is an address webhooks may reach: a global
// unicast address outside the private (10/8, 172.16/12, 192.168/16,
// fc00::/7), loopback, link-local (169.254/16, where cloud metadata
// services answer, and fe80::/10), multicast, unspecified and special
// ranges. IPv4-mapped IPv6 addresses are judged as the IPv4 address.
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLoopback() ||
		a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range blocked {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// CheckURL says why raw is not a URL deliveries may go to, or returns
// nil: https, or (allowLoopback) http to a loopback host; no user
// information (credentials in URLs end up in logs); a host. The address
// the host resolves to is checked again at every connection.
func CheckURL(raw string, allowLoopback bool) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("url is not a valid URL")
	case u.User != nil:
		return errors.New("url must not contain user information")
	case u.Hostname() == "":
		return errors.New("url must name a host")
	case u.Scheme == "https":
	case u.Scheme == "http" && allowLoopback && isLoopbackHost(u.Hostname()):
	case u.Scheme == "http" && allowLoopback:
		return errors.New("url must be https (http only to a loopback host, in development)")
	default:
		return errors.New("url must be https")
	}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil && !Public(a) && !(allowLoopback && a.Unmap().IsLoopback()) {
		return fmt.Errorf("url's address %s is not a public address", a)
	}
	return nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Unmap().IsLoopback()
}

// post sends one signed message and returns the receiver's status; the
// body is read (up to MaxResponseBytes) only so the connection can be
// reused.
func post(ctx context.Context, c *http.Client, rawURL string, h http.Header, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header = h
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseBytes))
	return resp.StatusCode, nil
}
