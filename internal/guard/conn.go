package guard

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxConnsPerIP is how many connections one client address may
// hold open at once: far more than a browser (6 per origin over HTTP/1.1,
// 1 over HTTP/2) or an SDK pool needs, while one address can no longer
// take all the server's file descriptors.
const DefaultMaxConnsPerIP = 256

// ListenerParams configure Listener.
type ListenerParams struct {
	// MaxPerIP caps the open connections of one peer address; 0 or less
	// disables the cap.
	MaxPerIP int
	// Exempt reports peers the cap does not apply to: trusted proxies,
	// which carry many clients' connections. Nil exempts nobody.
	Exempt func(netip.Addr) bool
	// Logger receives at most one line per ten seconds about refused
	// connections, with a count (default slog.Default()).
	Logger *slog.Logger
}

// Listener wraps ln so that a peer address holding MaxPerIP connections
// has further ones answered at once with "503 Service Unavailable"
// (Retry-After: 1, Connection: close) and closed, without reading a
// request: a client past the cap learns why instead of seeing a reset,
// and costs the server no goroutine beyond that answer. The count drops
// when a connection closes.
func Listener(ln net.Listener, p ListenerParams) net.Listener {
	if p.MaxPerIP <= 0 {
		return ln
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	return &listener{Listener: ln, p: p, open: map[netip.Addr]int{}}
}

type listener struct {
	net.Listener
	p ListenerParams

	mu   sync.Mutex
	open map[netip.Addr]int

	refusing atomic.Int64 // refusals being answered right now
	lastLog  atomic.Int64 // unix nanoseconds of the last log line
	refused  atomic.Int64 // refusals since then
}

// maxRefusing bounds the goroutines answering refused connections; past
// it, a refused connection is closed without an answer.
const maxRefusing = 1024

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr, ok := peerAddr(c)
		if !ok || (l.p.Exempt != nil && l.p.Exempt(addr)) {
			return c, nil
		}
		l.mu.Lock()
		n := l.open[addr]
		if n < l.p.MaxPerIP {
			l.open[addr] = n + 1
		}
		l.mu.Unlock()
		if n < l.p.MaxPerIP {
			return &conn{Conn: c, release: func() { l.release(addr) }}, nil
		}
		l.refuse(c, addr)
	}
}

func (l *listener) release(addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.open[addr] - 1; n > 0 {
		l.open[addr] = n
	} else {
		delete(l.open, addr)
	}
}

// refuse answers a connection over the cap. The answer is written before
// anything is read; the write side is then shut, and what the client sent
// is drained for a moment, so closing does not reset the connection and
// destroy the answer before the client reads it.
func (l *listener) refuse(c net.Conn, addr netip.Addr) {
	l.logRefusal(addr)
	if l.refusing.Add(1) > maxRefusing {
		l.refusing.Add(-1)
		_ = c.Close()
		return
	}
	go func() {
		defer l.refusing.Add(-1)
		defer c.Close()
		msg := fmt.Sprintf("too many connections from %s (the limit is %d per address); close some and retry\n", addr, l.p.MaxPerIP)
		_ = c.SetDeadline(time.Now().Add(time.Second))
		_, _ = fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s", len(msg), msg)
		if tc, ok := c.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		}
		var buf [4096]byte
		for {
			if _, err := c.Read(buf[:]); err != nil {
				return
			}
		}
	}()
}

func (l *listener) logRefusal(addr netip.Addr) {
	n := l.refused.Add(1)
	now := time.Now().UnixNano()
	last := l.lastLog.Load()
	if now-last < int64(10*time.Second) || !l.lastLog.CompareAndSwap(last, now) {
		return
	}
	l.refused.Add(-n)
	l.p.Logger.Warn("refusing connections over the per-address cap", "addr", addr.String(), "max_per_ip", l.p.MaxPerIP, "refused", n)
}

func peerAddr(c net.Conn) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// conn gives its slot back once, however often it is closed.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite keeps the TCP half-close the HTTP server uses for a clean
// shutdown of a connection.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
