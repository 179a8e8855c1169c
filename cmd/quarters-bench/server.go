package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// buildServer compiles ./cmd/quarters into bin. It runs from the
// module root, found with go env GOMOD, so the command works from any
// directory inside the module.
func buildServer(ctx context.Context, bin string) error {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return errors.New("not inside the quarters module: run from the repository")
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/quarters")
	cmd.Dir = filepath.Dir(gomod)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build server: %w", err)
	}
	return nil
}

// server is the running server process.
type server struct {
	cmd     *exec.Cmd
	baseURL string        // http://127.0.0.1:PORT
	exited  chan struct{} // closed when the process has exited
	waitErr error         // cmd.Wait's result, valid once exited is closed
}

// startServer starts the server binary and waits until /readyz says it can
// reach the database.
func startServer(ctx context.Context, bin, appURL string, showStdout bool, extraEnv []string) (*server, error) {
	return startServerWith(ctx, bin, appURL, showStdout, extraEnv, os.Stderr)
}

// startServerWith is startServer with the server's stderr going to stderr.
func startServerWith(ctx context.Context, bin, appURL string, showStdout bool, extraEnv []string, stderr io.Writer) (*server, error) {
	cmd := exec.Command(bin)
	// Only what the server needs: in particular no PG* variables, which
	// could redirect its connections, and no QUARTERS_* settings of the
	// developer's own server.
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"DATABASE_URL=" + appURL,
		// Port 0 lets the kernel pick a free port as the server binds
		// it, so nothing can take the port between choosing and
		// binding; the server prints the address it got.
		"QUARTERS_ADDR=127.0.0.1:0",
		// The server logs every call at info; at tens of thousands of
		// calls a second that logging would be much of what we measure.
		"QUARTERS_LOG_LEVEL=warn",
		// We wait for in-flight calls at the end anyway; do not let a
		// stuck one hold the run for the default 30s.
		"QUARTERS_SHUTDOWN_TIMEOUT=5s",
	}
	cmd.Env = append(cmd.Env, extraEnv...)
	addrc := make(chan string, 1)
	var tee io.Writer
	if showStdout {
		tee = os.Stderr
	}
	cmd.Stdout = &addrWatcher{found: addrc, tee: tee}
	cmd.Stderr = stderr
	// Its own process group: a Ctrl-C at the terminal then reaches only
	// us, and we stop the server ourselves, before the database, instead
	// of both racing to shut down.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	s := &server{cmd: cmd, exited: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()

	ready := func() error {
		timeout := time.After(60 * time.Second)
		var addr string
		select {
		case addr = <-addrc:
		case <-s.exited:
			return fmt.Errorf("server exited before listening: %v", s.waitErr)
		case <-timeout:
			return errors.New("server did not report its address within 60s")
		case <-ctx.Done():
			return ctx.Err()
		}
		host, _, err := net.SplitHostPort(addr)
		if err != nil || host != "127.0.0.1" {
			// We only ever send load to loopback.
			return fmt.Errorf("server reported address %q, want 127.0.0.1:PORT", addr)
		}
		s.baseURL = "http://" + addr
		probe := &http.Client{Timeout: 3 * time.Second}
		for {
			resp, err := probe.Get(s.baseURL + "/readyz")
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
			select {
			case <-s.exited:
				return fmt.Errorf("server exited before it was ready: %v", s.waitErr)
			case <-timeout:
				return errors.New("server was not ready (GET /readyz) within 60s")
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if err := ready(); err != nil {
		return nil, errors.Join(err, s.stop())
	}
	return s, nil
}

// stop sends SIGTERM, which the server answers with a graceful shutdown,
// and waits; a server that does not exit in time is killed.
func (s *server) stop() error {
	select {
	case <-s.exited:
		// Already gone: a server that died during the run is an error
		// worth reporting, since the figures are then meaningless.
		if s.waitErr != nil {
			return fmt.Errorf("server exited: %w", s.waitErr)
		}
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return errors.New("server did not stop within 15s of SIGTERM; killed it")
	}
	if s.waitErr != nil {
		return fmt.Errorf("server shutdown: %w", s.waitErr)
	}
	return nil
}

// addrWatcher receives the server's stdout and sends, once, the address in
// its "Quarters is listening on http://ADDR" line. Being the process's
// Stdout (rather than reading a pipe ourselves) lets exec copy the output
// and Wait for the copy to finish.
type addrWatcher struct {
	found chan<- string
	tee   io.Writer // optional copy of everything
	buf   []byte    // the current incomplete line
	done  bool
}

const listeningPrefix = "Quarters is listening on http://"

func (w *addrWatcher) Write(p []byte) (int, error) {
	if w.tee != nil {
		_, _ = w.tee.Write(p)
	}
	if w.done {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSpace(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
		if addr, ok := strings.CutPrefix(line, listeningPrefix); ok {
			w.found <- addr
			w.done, w.buf = true, nil
			break
		}
	}
	if len(w.buf) > 64<<10 {
		w.buf = nil // never hold on to an unterminated flood
	}
	return len(p), nil
}

// newHTTPClient returns the one client every call shares. Its transport
// keeps an idle connection per request loop, so loops reuse connections
// instead of opening (and leaving in TIME_WAIT) a new one per call.
func newHTTPClient(o options) *http.Client {
	conns := max(o.concurrency, o.seedWorkers)
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil, // never a proxy: we talk to 127.0.0.1 only
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     90 * time.Second,
		},
		// Bounds each call, so a hung server cannot stall a loop past
		// the deadline by more than this.
		Timeout: o.reqTimeout,
	}
}
