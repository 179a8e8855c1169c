// Package redistest runs a private redis-server for a test: its own
// process, listening only on a unix socket in a temporary directory, with
// persistence off, so tests neither share state nor need a Redis set up
// beforehand, and can stop and restart it to test outages. Import it only
// from _test.go files.
package redistest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startTimeout bounds how long New and Start wait for the server to answer
// PING; a healthy redis-server takes a few milliseconds.
const startTimeout = 10 * time.Second

// Server is a private redis-server for one test.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	sock string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	output *syncBuffer
	paused bool
}

// New starts a redis-server for t and stops it when t ends. It fails t if
// redis-server is not installed (install it with apt-get install
// redis-server) or does not come up: a test that needs Redis is not skipped
// for lack of it, because a skipped test passes CI without testing anything.
func New(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: redis-server is not installed (%v); install it with: apt-get install redis-server", err)
	}
	// Not t.TempDir(): a unix socket path must fit in 108 bytes, and
	// t.TempDir's paths, named after the test, often don't.
	dir, err := os.MkdirTemp("", "qredis")
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	s := &Server{t: t, bin: bin, dir: dir, sock: filepath.Join(dir, "redis.sock")}
	t.Cleanup(func() {
		s.Stop()
		_ = os.RemoveAll(dir)
	})
	s.Start()
	return s
}

// Options returns client options for the server; each call returns a new
// value that the caller may change.
func (s *Server) Options() *redis.Options {
	return &redis.Options{Network: "unix", Addr: s.sock}
}

// Client returns a new client of the server, closed when the test ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(s.Options())
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Start starts the server, on the same socket as before, after Stop; it
// does nothing if the server is running. The data set starts empty. It
// returns once the server answers PING, and fails the test if it doesn't
// within ten seconds; call it from the test's goroutine.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	// A socket left by a server that was killed would make the new one fail
	// to bind.
	_ = os.Remove(s.sock)
	out := &syncBuffer{}
	cmd := exec.Command(s.bin,
		"--port", "0", // no TCP listener: nothing outside this test can reach it
		"--unixsocket", s.sock,
		"--unixsocketperm", "700",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--logfile", "", // to stdout, kept for the failure message
	)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("redistest: start %s: %v", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited, s.output, s.paused = cmd, exited, out, false

	if err := s.waitReady(exited); err != nil {
		s.stopLocked()
		s.t.Fatalf("redistest: redis-server did not come up: %v\n%s", err, out.String())
	}
}

func (s *Server) waitReady(exited <-chan struct{}) error {
	c := redis.NewClient(&redis.Options{
		Network:     "unix",
		Addr:        s.sock,
		MaxRetries:  -1,
		DialTimeout: time.Second,
	})
	defer c.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("redis-server exited")
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Stop shuts the server down and waits for it to exit, so that clients see
// connections refused until Start. It does nothing if the server is not
// running.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	if s.paused {
		_ = s.cmd.Process.Signal(syscall.SIGCONT) // a stopped process would not act on SIGTERM
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd, s.exited, s.paused = nil, nil, false
}

// Pause freezes the server (SIGSTOP) without closing its socket, so that
// commands hang rather than fail: the slow-Redis case. Resume undoes it, and
// Stop resumes it first.
func (s *Server) Pause() {
	s.t.Helper()
	s.signal(syscall.SIGSTOP, true)
}

// Resume lets a paused server run again.
func (s *Server) Resume() {
	s.t.Helper()
	s.signal(syscall.SIGCONT, false)
}

func (s *Server) signal(sig syscall.Signal, paused bool) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("redistest: %v: server is not running", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: %v: %v", sig, err)
	}
	s.paused = paused
}

// syncBuffer collects the server's output, written by exec's copying
// goroutine and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
