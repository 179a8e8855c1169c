package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// peer is the running Node/Express process of bench/peer.
type peer struct {
	cmd     *exec.Cmd
	baseURL string
	exited  chan struct{}
	waitErr error
}

// ensurePeerModules installs bench/peer's locked dependencies (npm ci)
// unless they are there already.
func ensurePeerModules(ctx context.Context, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "express")); err == nil {
		return nil
	}
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm ci in %s: %w", dir, err)
	}
	return nil
}

// startPeer starts node server.js in dir against appURL with a pool of
// pool connections, writing sep between JSON elements, and waits until it
// listens (on 127.0.0.1 only).
func startPeer(ctx context.Context, dir, appURL string, pool int, sep string) (*peer, error) {
	cmd := exec.Command("node", "server.js")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "NODE_ENV=production",
		"DATABASE_URL=" + appURL, fmt.Sprintf("POOL=%d", pool), "SEP=" + sep}
	addrc := make(chan string, 1)
	cmd.Stdout = &lineWatcher{prefix: "peer listening on ", found: addrc}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start peer: %w", err)
	}
	p := &peer{cmd: cmd, exited: make(chan struct{})}
	go func() { p.waitErr = cmd.Wait(); close(p.exited) }()
	select {
	case addr := <-addrc:
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			return nil, errors.Join(fmt.Errorf("peer listens on %q, want 127.0.0.1", addr), p.stop())
		}
		p.baseURL = "http://" + addr
	case <-p.exited:
		return nil, fmt.Errorf("peer exited before listening: %v", p.waitErr)
	case <-time.After(30 * time.Second):
		return nil, errors.Join(errors.New("peer did not listen within 30s"), p.stop())
	case <-ctx.Done():
		return nil, errors.Join(ctx.Err(), p.stop())
	}
	return p, nil
}

func (p *peer) pid() int { return p.cmd.Process.Pid }

func (p *peer) stop() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	return nil
}

// lineWatcher finds the first stdout line starting with prefix and sends
// the rest of it.
type lineWatcher struct {
	prefix string
	found  chan<- string
	buf    []byte
	done   bool
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	if w.done {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSpace(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
		if rest, ok := strings.CutPrefix(line, w.prefix); ok {
			w.found <- rest
			w.done = true
			break
		}
	}
	return len(p), nil
}

// fetch POSTs body to url as bearer and returns the response body.
func fetch(ctx context.Context, url, contentType, bearer string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: HTTP %d: %.300s", url, resp.StatusCode, b)
	}
	return b, err
}
