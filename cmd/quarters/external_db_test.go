package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db/dbtest"
	"github.com/quarters-dev/quarters/internal/redistest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// TestExternalDatabase: `quarters migrate` with an owner URL, then the
// server on DATABASE_URL as the app role; and the server refusing to start
// as a role that could bypass row-level security.
func TestExternalDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	bin := buildServer(t)
	appURL, ownerURL := dbtest.NewURLs(t)
	// The mailbox goes to the test's directory, never into the source tree.
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "QUARTERS_ADDR=127.0.0.1:0",
		"QUARTERS_MAILBOX_DIR=" + t.TempDir()}

	out, err := exec.Command(bin, "migrate", "-database-url", ownerURL).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "migrations applied")

	// -citus converts on a Citus coordinator (dbtest's database is one
	// already under QUARTERS_TEST_CITUS=1, and converting again is a
	// no-op), and says what is missing on plain PostgreSQL.
	out, err = exec.Command(bin, "migrate", "-citus", "-database-url", ownerURL).CombinedOutput()
	if dbtest.Citus() {
		require.NoError(t, err, string(out))
		require.Contains(t, string(out), "citus: tenant tables distributed by tenant_id")
	} else {
		require.Error(t, err)
		require.Contains(t, string(out), "not a Citus coordinator (no citus extension)")
	}

	out, err = exec.Command(bin, "migrate").CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "QUARTERS_OWNER_DATABASE_URL")

	refuse := exec.Command(bin)
	refuse.Env = append(env, "DATABASE_URL="+ownerURL)
	out, err = refuse.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "unsafe database role")

	// With Redis too: shared limits and cache, and a shutdown that does
	// not hang on the cache's pub/sub subscription.
	rs := redistest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(env, "DATABASE_URL="+appURL, "REDIS_URL=unix://"+rs.Options().Addr, "QUARTERS_SIGNUP_RATE=2")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	welcome := readUntil(t, stdout, "listening on")
	addr := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)`).FindStringSubmatch(welcome)
	require.NotNil(t, addr)
	resp, err := http.Get("http://" + addr[1] + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// QUARTERS_SIGNUP_RATE reaches the limiter: the third sign-up from this
	// address within a minute is refused.
	for i, want := range []int{http.StatusOK, http.StatusOK, http.StatusTooManyRequests} {
		body := fmt.Sprintf(`{"slug":"ext-%d","name":"Ext","ownerEmail":"o@ext.example"}`, i)
		resp, err := http.Post("http://"+addr[1]+"/quarters.v1.TenantService/CreateTenant", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, "sign-up %d", i+1)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("server with Redis did not stop within 30s of SIGTERM")
	}
}

// TestBehindPgBouncer: the server as README's "Behind PgBouncer" runs it,
// DATABASE_URL through PgBouncer 1.18 in transaction mode and
// QUARTERS_DB_POOLER=transaction: sign-ups are served, and the job that
// mails each owner's verification link, polled for, is worked.
func TestBehindPgBouncer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	bin := buildServer(t)
	appURL, _ := dbtest.NewURLs(t)
	bouncer := dbtest.NewPgBouncer(t, appURL, &dbtest.PgBouncerOpts{PoolSize: 2})
	box := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "QUARTERS_ADDR=127.0.0.1:0",
		"QUARTERS_MAILBOX_DIR=" + box, "DATABASE_URL=" + bouncer.URL(appURL), "QUARTERS_DB_POOLER=transaction",
		"QUARTERS_DB_MAX_CONNS=6"}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	welcome := readUntil(t, stdout, "listening on")
	addr := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)`).FindStringSubmatch(welcome)
	require.NotNil(t, addr)
	for i := range 3 {
		body := fmt.Sprintf(`{"slug":"bounced-%d","name":"Bounced","ownerEmail":"o%d@bounced.example","ownerPassword":"bounced password %d"}`, i, i, i)
		resp, err := http.Post("http://"+addr[1]+"/quarters.v1.TenantService/CreateTenant", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "sign-up %d", i+1)
	}
	require.Eventually(t, func() bool {
		mails, _ := filepath.Glob(filepath.Join(box, "*.eml"))
		return len(mails) >= 3
	}, 30*time.Second, 100*time.Millisecond, "the verification mails (jobs) were not sent")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait())
}
