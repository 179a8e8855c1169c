package dbtest

import (
	"context"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Wire counts what a pool's connections do on the wire, so tests and
// benchmarks can assert round trips and transactions instead of timing
// anything. Install it with Count before the pool is created. The zero
// value is ready to use.
type Wire struct {
	mu            sync.Mutex
	roundTrips    int64
	transactions  int64
	simpleQueries int64
}

// WireCounts are a Wire's totals.
type WireCounts struct {
	// RoundTrips counts client→server→client turnarounds: a write that
	// follows a read (or is a connection's first) begins one.
	RoundTrips int64
	// Transactions counts the transactions the server finished, explicit
	// or implicit: every ReadyForQuery with status idle ends one.
	Transactions int64
	// SimpleQueries counts statements sent over the simple protocol
	// (Query messages); the extended protocol's don't count.
	SimpleQueries int64
}

// Count makes every connection of cfg's pool counted by w.
func (w *Wire) Count(cfg *pgxpool.Config) {
	dial := cfg.ConnConfig.DialFunc
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &wireConn{Conn: c, w: w}, nil
	}
}

// Counts returns the totals so far.
func (w *Wire) Counts() WireCounts {
	w.mu.Lock()
	defer w.mu.Unlock()
	return WireCounts{RoundTrips: w.roundTrips, Transactions: w.transactions, SimpleQueries: w.simpleQueries}
}

// Reset sets the totals to zero.
func (w *Wire) Reset() {
	w.mu.Lock()
	w.roundTrips, w.transactions, w.simpleQueries = 0, 0, 0
	w.mu.Unlock()
}

// wireConn parses the backend's message stream only as far as needed to
// find ReadyForQuery ('Z', length 5, one status byte): each message is a
// type byte, a big-endian int32 length that counts itself, and a body.
type wireConn struct {
	net.Conn
	w *Wire
	// pgx reads in a background goroutine while another writes: the two
	// flags they share are atomic.
	writing atomic.Bool

	// Parser state across reads, which may split messages anywhere.
	// The first message of a connection comes after the startup
	// exchange, whose replies are ordinary typed messages too.
	hdr     [5]byte
	hdrN    int
	remain  int         // body bytes of the current message still to skip
	isReady bool        // the current message is ReadyForQuery
	started atomic.Bool // a typed message has been seen

	// The frontend's stream, typed once the server has answered the
	// (untyped) SSL request and startup message.
	out outParser
}

type outParser struct {
	hdr    [5]byte
	hdrN   int
	remain int
}

// parse counts the Query messages in b.
func (o *outParser) parse(b []byte, w *Wire) {
	for len(b) > 0 {
		if o.remain > 0 {
			k := min(o.remain, len(b))
			o.remain -= k
			b = b[k:]
			continue
		}
		k := copy(o.hdr[o.hdrN:], b)
		o.hdrN += k
		b = b[k:]
		if o.hdrN < len(o.hdr) {
			return
		}
		o.hdrN = 0
		o.remain = int(binary.BigEndian.Uint32(o.hdr[1:])) - 4
		if o.hdr[0] == 'Q' {
			w.mu.Lock()
			w.simpleQueries++
			w.mu.Unlock()
		}
	}
}

func (c *wireConn) Write(p []byte) (int, error) {
	if !c.writing.Swap(true) {
		c.w.mu.Lock()
		c.w.roundTrips++
		c.w.mu.Unlock()
	}
	if c.started.Load() {
		c.out.parse(p, c.w)
	}
	return c.Conn.Write(p)
}

func (c *wireConn) Read(p []byte) (int, error) {
	c.writing.Store(false)
	n, err := c.Conn.Read(p)
	if !c.started.Load() && n == 1 && p[0] == 'N' {
		// The one-byte refusal of an SSLRequest, before any typed
		// message; the server sends nothing else until the startup
		// message, so it arrives alone.
		return n, err
	}
	c.parse(p[:n])
	return n, err
}

func (c *wireConn) parse(b []byte) {
	for len(b) > 0 {
		if c.remain > 0 {
			k := min(c.remain, len(b))
			if c.isReady && c.remain == 1 {
				if b[0] == 'I' {
					c.w.mu.Lock()
					c.w.transactions++
					c.w.mu.Unlock()
				}
			}
			c.remain -= k
			b = b[k:]
			continue
		}
		k := copy(c.hdr[c.hdrN:], b)
		c.hdrN += k
		b = b[k:]
		if c.hdrN < len(c.hdr) {
			return
		}
		c.hdrN = 0
		c.started.Store(true)
		c.isReady = c.hdr[0] == 'Z'
		c.remain = int(binary.BigEndian.Uint32(c.hdr[1:])) - 4
	}
}
