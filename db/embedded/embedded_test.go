package embedded

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/quarters-dev/quarters/db"
	"github.com/stretchr/testify/require"
)

// embeddedTestDir returns a new directory for a cluster. Not t.TempDir():
// its parents are 0700, so when the test runs as root the postgres account
// could not reach it and Start would fall back elsewhere.
func embeddedTestDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "qpgtest")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func queryString(t *testing.T, ctx context.Context, url, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var s string
	require.NoError(t, conn.QueryRow(ctx, sql).Scan(&s))
	return s
}

func TestEmbeddedEphemeral(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := embeddedTestDir(t)

	e, err := Start(ctx, Opts{DataDir: dir, Ephemeral: true})
	require.NoError(t, err)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = e.Stop(context.Background())
		}
	})

	require.Equal(t, "postgres", queryString(t, ctx, e.OwnerURL("postgres"), "select current_user"))
	require.NoError(t, db.Migrate(ctx, e.OwnerURL("postgres")))

	app, err := pgx.Connect(ctx, e.AppURL("postgres"))
	require.NoError(t, err)
	var user string
	require.NoError(t, app.QueryRow(ctx, "select current_user").Scan(&user))
	require.Equal(t, "quarters_app", user)
	var super, bypass bool
	require.NoError(t, app.QueryRow(ctx,
		"select rolsuper, rolbypassrls from pg_roles where rolname = current_user").Scan(&super, &bypass))
	require.False(t, super)
	require.False(t, bypass)
	require.NoError(t, app.Close(ctx))

	require.NoError(t, e.EnsureDatabase(ctx, "quarters"))
	require.NoError(t, e.EnsureDatabase(ctx, "quarters"), "EnsureDatabase must be idempotent")
	require.Equal(t, "quarters", queryString(t, ctx, e.OwnerURL("quarters"), "select current_database()"))

	sockDir := e.sockDir
	require.NoError(t, e.Stop(ctx))
	stopped = true
	require.NoError(t, e.Stop(ctx), "a second Stop returns the first result")
	_, err = os.Stat(dir)
	require.ErrorIs(t, err, fs.ErrNotExist, "Stop must remove an ephemeral data dir")
	_, err = os.Stat(sockDir)
	require.ErrorIs(t, err, fs.ErrNotExist, "Stop must remove the socket dir")
}

// TestEmbeddedReuse restarts a durable cluster: the second start must find
// the data of the first, and a start on a directory whose server is still
// running must say so.
func TestEmbeddedReuse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := embeddedTestDir(t)
	// MkdirTemp made base 0700; open it up so that, as root, the postgres
	// account can reach the nested directories Start creates.
	require.NoError(t, os.Chmod(base, 0o755))
	dir := filepath.Join(base, "nested", "data")

	e, err := Start(ctx, Opts{DataDir: dir})
	require.NoError(t, err)
	require.NoError(t, e.EnsureDatabase(ctx, "quarters"))

	_, err = Start(ctx, Opts{DataDir: dir})
	require.ErrorContains(t, err, "already running")
	// The message's command works as pasted, as root too (where pg_ctl
	// must run as the postgres account): it stops the first server.
	stop := regexp.MustCompile("stop it with `([^`]+)`").FindStringSubmatch(err.Error())
	require.NotNil(t, stop, err.Error())
	require.Contains(t, stop[1], filepath.Join(e.binDir, "pg_ctl")+" stop -D "+dir)
	if os.Geteuid() == 0 {
		require.True(t, strings.HasPrefix(stop[1], "runuser -u postgres -- "), stop[1])
	}
	out, err := exec.CommandContext(ctx, "sh", "-c", stop[1]).CombinedOutput()
	require.NoError(t, err, string(out))
	running, err := e.running(ctx)
	require.NoError(t, err)
	require.False(t, running, "the suggested command did not stop the server")

	require.NoError(t, e.Stop(ctx), "Stop after someone else stopped the server")
	_, err = os.Stat(filepath.Join(dir, "PG_VERSION"))
	require.NoError(t, err, "Stop must keep a durable cluster")

	e, err = Start(ctx, Opts{DataDir: dir})
	require.NoError(t, err)
	defer e.Stop(context.Background())
	require.Equal(t, "quarters", queryString(t, ctx, e.OwnerURL("quarters"), "select current_database()"))
	require.Equal(t, dir, e.dir, "no fallback expected")
}

// TestEmbeddedFallback checks that, as root, a data dir the postgres
// account cannot reach is replaced by one under the temp dir.
func TestEmbeddedFallback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the fallback applies only when running as root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := embeddedTestDir(t) // 0700, owned by root
	dir := filepath.Join(base, "data")

	e, err := Start(ctx, Opts{DataDir: dir, Ephemeral: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Stop(context.Background()) })
	require.NotEqual(t, dir, e.dir)
	require.Contains(t, filepath.Base(e.dir), "quarters-pg-")
	require.Equal(t, "postgres", queryString(t, ctx, e.OwnerURL("postgres"), "select current_user"))

	require.NoError(t, e.Stop(ctx))
	_, err = os.Stat(e.dir)
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestEmbeddedRejectsForeignDir(t *testing.T) {
	dir := embeddedTestDir(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644))
	_, err := Start(context.Background(), Opts{DataDir: dir})
	if errors.Is(err, ErrNoPostgres) {
		t.Fatal(err)
	}
	require.ErrorContains(t, err, "holds no PostgreSQL cluster")
	_, err = os.Stat(filepath.Join(dir, "notes.txt"))
	require.NoError(t, err)
}

func TestFindPGBinariesNone(t *testing.T) {
	_, _, err := findPGBinaries(context.Background(), "", filepath.Join(t.TempDir(), "nonexistent"))
	require.ErrorIs(t, err, ErrNoPostgres)
	require.ErrorContains(t, err, "were not found on PATH or under")
	require.ErrorContains(t, err, "set DATABASE_URL")
}

func TestFindPGBinariesPrefersPath(t *testing.T) {
	dir, major, err := findPGBinaries(context.Background(), "", pgLibRoot)
	if errors.Is(err, ErrNoPostgres) {
		t.Skip("no PostgreSQL under", pgLibRoot)
	}
	require.NoError(t, err)
	require.GreaterOrEqual(t, major, pgMinMajor)

	// The same directory on PATH wins over the search root.
	got, _, err := findPGBinaries(context.Background(), "relative/dir"+string(os.PathListSeparator)+dir, "/nonexistent")
	require.NoError(t, err)
	require.Equal(t, dir, got)
}

func TestFindPGCompareVersions(t *testing.T) {
	require.Negative(t, pgCompareVersions("9.6", "15"))
	require.Positive(t, pgCompareVersions("16", "15"))
	require.Negative(t, pgCompareVersions("latest", "9.6"))
	require.Zero(t, pgCompareVersions("15", "15"))
}
