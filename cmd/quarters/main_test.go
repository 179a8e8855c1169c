package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestReadmeCommands runs README's server command the way a newcomer
// would, with no configuration (the embedded PostgreSQL), then pastes the
// curl line it prints and runs README's walk-through against it, and
// finally stops it with SIGTERM. If the README or the welcome text drifts
// from what the server does, this fails.
func TestReadmeCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server with its own PostgreSQL")
	}
	for _, tool := range []string{"curl", "bash", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the README's commands: %v", tool, err)
		}
	}
	bin := buildServer(t)

	// Postgres runs as the postgres user when this test runs as root, so
	// its data directory must be reachable by it: not under t.TempDir()'s
	// 0700 parents, and not 0700 itself.
	dataDir, err := os.MkdirTemp("", "qreadme")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dataDir, 0o755))
	t.Cleanup(func() { os.RemoveAll(dataDir) })

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"QUARTERS_DATA_DIR=" + filepath.Join(dataDir, "data"),
		"QUARTERS_MAILBOX_DIR=" + filepath.Join(dataDir, "mailbox"),
		"QUARTERS_ADDR=127.0.0.1:0",
	}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	// The server writes stderr while the test (and its cleanup) reads it.
	var stderr syncBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("server stderr:\n%s", stderr.String())
		}
	})

	// Read the welcome text up to the second curl command.
	welcome := readUntil(t, stdout, "-d '{}'")
	// The first start says it migrated the database it created.
	require.Contains(t, stderr.String(), "migrations applied")
	addr := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)`).FindStringSubmatch(welcome)
	require.NotNil(t, addr, welcome)
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	// The printed sign-up command works as pasted.
	signup := regexp.MustCompile(`(?s)(curl -sS http://\S+/quarters\.v1\.TenantService/CreateTenant.*?}')`).FindString(welcome)
	require.NotEmpty(t, signup, welcome)
	out := shell(t, signup, nil)
	key := regexp.MustCompile(`"apiKeySecret":"(qk_[a-z2-7]+)"`).FindStringSubmatch(out)
	require.NotNil(t, key, out)
	list := regexp.MustCompile(`(?s)(curl -sS http://\S+/quarters\.v1\.ProjectService/ListProjects.*?-d '\{\}')`).FindString(welcome)
	require.NotEmpty(t, list, welcome)
	require.Equal(t, "{}", strings.TrimSpace(shell(t, list, []string{"KEY=" + key[1]})))

	// README's walk-through, verbatim.
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	block := regexp.MustCompile("(?s)<!-- walkthrough:start -->\\s*```sh\n(.*?)```\\s*<!-- walkthrough:end -->").FindSubmatch(readme)
	require.NotNil(t, block, "README lost its walk-through block")
	port := strings.TrimPrefix(addr[1], "127.0.0.1:")
	// Twice on the same server and data dir: the second run must not
	// collide with the first's slugs and emails.
	var slugs []string
	for run := range 2 {
		out := shell(t, string(block[1]), []string{
			"Q=http://localhost:" + port, "MAILBOX=" + filepath.Join(dataDir, "mailbox"),
		})
		slugs = append(slugs, checkWalkthrough(t, run, strings.Split(strings.TrimSpace(out), "\n")))
	}
	require.NotEqual(t, slugs[0], slugs[1], "each run signs up tenants of its own")

	// Without Redis, the server warns that revocation is per process, and
	// for how long another replica may lag.
	require.Contains(t, stderr.String(), "no REDIS_URL: rate limits, the tenant cache and revocations are per process")
	require.Contains(t, stderr.String(), `"max_stale":"1m0s"`)

	// SIGTERM: graceful shutdown, exit 0, and the embedded PostgreSQL stopped.
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatal("server did not stop within 60s of SIGTERM")
	}
	require.Contains(t, stderr.String(), "stopped")
	_, err = os.Stat(filepath.Join(dataDir, "data", "postmaster.pid"))
	require.True(t, os.IsNotExist(err), "postgres still running after shutdown")
}

// checkWalkthrough checks the output lines of one run of README's
// walk-through, and returns the slug Acme got in it.
func checkWalkthrough(t *testing.T, run int, lines []string) string {
	t.Helper()
	walk := strings.Join(lines, "\n")
	require.GreaterOrEqualf(t, len(lines), 14, "run %d, walk-through output:\n%s", run, walk)
	require.Contains(t, lines[0], `"title":"Kickoff"`, walk)
	require.Contains(t, lines[1], `"title":"Kickoff"`)
	require.Equal(t, `{"code":"not_found","message":"project not found"}`, lines[2])
	require.Equal(t, lines[2], lines[3], "another tenant's id must look exactly like a missing one")
	require.Equal(t, "{}", lines[4])
	require.Contains(t, lines[5], `"code":"permission_denied"`)
	require.Contains(t, lines[5], "TENANT_MISMATCH")
	require.Contains(t, lines[6], `"code":"invalid_argument"`)
	require.Contains(t, lines[6], "buf.validate.Violations")
	require.Contains(t, lines[6], "name: must be at least 1 character\\n", "singular, and the message goes on")
	require.Contains(t, lines[7], `"code":"failed_precondition"`)
	require.Contains(t, lines[7], "EMAIL_NOT_VERIFIED")
	require.Equal(t, "{}", lines[8], "the mailed link verifies the address")
	slug := regexp.MustCompile(`"tenantSlug":"(acme-[0-9]+)"`).FindStringSubmatch(lines[9])
	require.NotNil(t, slug, lines[9])
	require.Contains(t, lines[9], `"email":"ceo@`+slug[1]+`.example"`)
	require.Contains(t, lines[9], `"role":"ROLE_OWNER"`)
	require.Contains(t, lines[9], `"emailVerified":true`)
	require.Contains(t, lines[10], `"code":"unauthenticated"`)
	require.Contains(t, lines[11], `"kty":"OKP"`)
	require.Contains(t, lines[11], `"alg":"EdDSA"`)
	codes := strings.Fields(lines[12])
	require.Len(t, codes, 30)
	// The burst of 20, less the 3 calls Globex made before: the first 17
	// are admitted whatever the machine's speed; later ones depend on how
	// much the bucket refilled meanwhile, but some are refused.
	for i, c := range codes[:17] {
		require.Equalf(t, "200", c, "call %d of %v", i, codes)
	}
	require.Contains(t, codes, "429", "the free plan's burst was not enforced")
	limited := strings.ToLower(strings.Join(lines[13:], "\n"))
	for _, want := range []string{"http/1.1 429", "retry-after: 1", "x-ratelimit-limit: 100", "x-ratelimit-remaining: 0", "ratelimit-policy: ", "resource_exhausted", "google.rpc.retryinfo", "retry in 1s"} {
		require.Contains(t, limited, want)
	}
	// X-RateLimit-Reset is seconds until the full burst is back: 20 calls
	// at 0.6 s each is 12 s at most.
	reset := regexp.MustCompile(`x-ratelimit-reset: ([0-9]+)`).FindStringSubmatch(limited)
	require.NotNil(t, reset, limited)
	n, err := strconv.Atoi(reset[1])
	require.NoError(t, err)
	require.True(t, n >= 1 && n <= 12, "X-RateLimit-Reset %d is seconds, not a timestamp", n)
	return slug[1]
}

// buildServer builds the command into the test's temp dir (the build
// cache makes the second build a link step).
func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "quarters")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())
	return bin
}

func readUntil(t *testing.T, r io.Reader, marker string) string {
	t.Helper()
	var b strings.Builder
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), marker) {
			return b.String()
		}
	}
	t.Fatalf("server exited before printing %q; stdout:\n%s", marker, b.String())
	return ""
}

func shell(t *testing.T, script string, env []string) string {
	t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	var stderr []byte
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = ee.Stderr
	}
	require.NoError(t, err, "script:\n%s\nstdout:\n%s\nstderr:\n%s", script, out, stderr)
	return string(out)
}

// syncBuffer is a strings.Builder safe for one writer and concurrent
// readers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBusyPortFailsBeforeDatabase: a port already in use fails at once,
// before a PostgreSQL is initialised or migrated for nothing.
func TestBusyPortFailsBeforeDatabase(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg, err := loadConfig(func(k string) string {
		return map[string]string{"QUARTERS_ADDR": busy.Addr().String(), "QUARTERS_DATA_DIR": dataDir}[k]
	})
	require.NoError(t, err)
	err = serve(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
	require.ErrorContains(t, err, "address already in use")
	_, statErr := os.Stat(dataDir)
	require.True(t, os.IsNotExist(statErr), "no data directory was created: %v", statErr)
}
