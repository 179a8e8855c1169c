// Package guard protects the HTTP server from clients that would tie it
// up: request bodies over the size limit, bodies that trickle in, and too
// many connections from one address. Each refusal is a clear,
// non-retryable answer, never a 429 a client would retry.
package guard

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"connectrpc.com/connect"
)

// Defaults of BodyParams.
const (
	// DefaultBodyTimeout is how long a request body may take before any
	// allowance for its size: ample for the few kilobytes of nearly every
	// call, even over a poor mobile link.
	DefaultBodyTimeout = 10 * time.Second
	// MinBodyRate is the slowest average upload a body may keep up beyond
	// DefaultBodyTimeout: every 64 KiB received buys one more second, so a
	// legitimate 4 MiB upload over a 1 Mbit/s link arrives in time while a
	// client sending a byte a second is cut off after the timeout.
	MinBodyRate = 64 << 10 // bytes per second
)

// BodyParams configure Body.
type BodyParams struct {
	// MaxBytes caps a request body, and a compressed message once
	// decompressed (required).
	MaxBytes int64
	// Timeout is how long a body may take to arrive, plus a second per
	// MinBodyRate bytes received (default DefaultBodyTimeout).
	Timeout time.Duration
	// Deadline reports whether r's body is read under the deadline: unary
	// RPCs, whose body is read in full before the handler runs. Streams
	// (gRPC reflection, health watches) are exempt. Nil: every request.
	Deadline func(r *http.Request) bool
}

// Body wraps a Connect handler so that a request body over MaxBytes is
// refused as INVALID_ARGUMENT naming the limit (HTTP 413 with the Connect
// protocol's unary calls, grpc-status 3 with gRPC), and a body that takes
// longer than its deadline as DEADLINE_EXCEEDED (HTTP 408 for Connect
// unary). Neither is retryable: sending the same body again fails again.
// The errors come out of the body reader as *connect.Error, which Connect
// passes through to the client as they are.
func Body(p BodyParams, next http.Handler) http.Handler {
	if p.Timeout <= 0 {
		p.Timeout = DefaultBodyTimeout
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := &body{
			r:   http.MaxBytesReader(w, r.Body, p.MaxBytes),
			max: p.MaxBytes,
		}
		if p.Deadline == nil || p.Deadline(r) {
			b.rc = http.NewResponseController(w)
			b.start = time.Now()
			b.timeout = p.Timeout
		}
		r.Body = b
		next.ServeHTTP(&statusWriter{ResponseWriter: w, body: b}, r)
	})
}

// body is a request body that fails with Connect errors.
type body struct {
	r       io.ReadCloser
	max     int64
	rc      *http.ResponseController // nil: no deadline
	start   time.Time
	timeout time.Duration
	read    int64
	// tooLarge and tooSlow record why the body failed, for statusWriter.
	tooLarge, tooSlow bool
	done              bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.rc != nil && !b.done {
		// The deadline moves with what has arrived, so only a body that
		// falls below MinBodyRate on average (after the timeout) fails.
		deadline := b.start.Add(b.timeout + time.Duration(float64(b.read)/MinBodyRate*float64(time.Second)))
		_ = b.rc.SetReadDeadline(deadline)
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		b.finish()
	case errors.As(err, &tooLarge):
		b.tooLarge = true
		return n, TooLargeError(b.max)
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.tooSlow = true
		return n, connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf(
			"request body too slow: %d bytes in %s; the server allows %s plus a second per %d KiB",
			b.read, time.Since(b.start).Round(time.Millisecond), b.timeout, MinBodyRate>>10))
	}
	return n, err
}

// finish lifts the deadline once the body is in: the handler may run for
// a while, and an expired read deadline would make the server's
// background read of an HTTP/1.1 connection cancel the request.
func (b *body) finish() {
	if b.rc != nil && !b.done {
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	b.done = true
}

func (b *body) Close() error { return b.r.Close() }

// TooLargeError is the error of a request (or a decompressed message)
// over max bytes.
func TooLargeError(max int64) *connect.Error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(
		"request too large: the limit is %d bytes (QUARTERS_MAX_BODY_BYTES); send less, such as a shorter document", max))
}

// statusWriter gives a Connect unary error caused by the body the HTTP
// status that says so: 413 instead of 400 for a body too large, 408
// instead of 504 for one too slow. Connect clients read the code from the
// error body, so only the status changes; gRPC answers 200 with the status
// in trailers and is left alone.
type statusWriter struct {
	http.ResponseWriter
	body *body
}

func (w *statusWriter) WriteHeader(code int) {
	switch {
	case code == http.StatusBadRequest && w.body.tooLarge:
		code = http.StatusRequestEntityTooLarge
	case code == http.StatusGatewayTimeout && w.body.tooSlow:
		code = http.StatusRequestTimeout
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Gzip is Connect's gzip compression with a cap on the decompressed size:
// a message over max bytes once decompressed fails as TooLargeError, when
// it reaches the cap, instead of Connect's RESOURCE_EXHAUSTED (HTTP 429,
// which clients retry) after inflating all of it. Handlers use it in place
// of their default gzip, with no ReadMaxBytes of their own.
func Gzip(max int64) connect.HandlerOption {
	return connect.WithCompression("gzip",
		func() connect.Decompressor { return &gunzip{max: max} },
		func() connect.Compressor { return gzip.NewWriter(io.Discard) },
	)
}

// gunzip is a gzip.Reader that fails past max bytes.
type gunzip struct {
	zr   gzip.Reader
	max  int64
	read int64
}

func (g *gunzip) Read(p []byte) (int, error) {
	n, err := g.zr.Read(p)
	g.read += int64(n)
	if g.read > g.max {
		return n, TooLargeError(g.max)
	}
	return n, err
}

func (g *gunzip) Reset(r io.Reader) error {
	g.read = 0
	return g.zr.Reset(r)
}

func (g *gunzip) Close() error { return g.zr.Close() }
