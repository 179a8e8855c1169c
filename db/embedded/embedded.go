// Package embedded starts a private PostgreSQL cluster from the locally
// installed server binaries (initdb, pg_ctl, postgres): the development
// server's database when no DATABASE_URL is given, and the tests' shared
// cluster. It creates the app role the server connects as, which owns
// nothing and is subject to row-level security.
package embedded

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoPostgres reports that no usable PostgreSQL server binaries (initdb,
// pg_ctl and postgres, version 15 or later) are installed. Start's
// error wraps it, so callers can tell "install PostgreSQL or set
// DATABASE_URL" apart from a cluster that failed to start.
var ErrNoPostgres = errors.New("no usable PostgreSQL server binaries (initdb, pg_ctl, postgres)")

// pgNoBinariesError carries a full, actionable sentence while still matching
// ErrNoPostgres with errors.Is.
type pgNoBinariesError struct{ msg string }

func (e *pgNoBinariesError) Error() string { return e.msg }
func (e *pgNoBinariesError) Unwrap() error { return ErrNoPostgres }

const (
	// pgMinMajor is the oldest server the migrations are written for.
	pgMinMajor = 15
	// pgLibRoot is where Debian and Ubuntu install one bin directory per
	// major version; those directories are not on PATH.
	pgLibRoot = "/usr/lib/postgresql"
	// pgSuperuser is the bootstrap superuser initdb creates; it owns the
	// schema and runs the migrations.
	pgSuperuser = "postgres"
	// pgOSUser is the OS account initdb and postgres run as when we are
	// root: both refuse to run as root.
	pgOSUser = "postgres"
	// pgEmbeddedAppRole is the role migration 001 creates for the server.
	pgEmbeddedAppRole = "quarters_app"
	// pgPort only names the socket file (.s.PGSQL.5432); the cluster does
	// not listen on TCP, and each cluster has its own socket directory, so
	// two clusters never collide on it.
	pgPort = "5432"
	// pgCtlTimeout bounds pg_ctl's wait for start-up and shut-down, in
	// seconds. Crash recovery of a big cluster can take a while.
	pgCtlTimeout = "60"
)

// Opts configures Start.
type Opts struct {
	// DataDir is the cluster directory. It is created and initdb'd if it
	// does not exist or is empty, and reused if it already holds a cluster
	// (a PG_VERSION file). Anything else there is an error.
	DataDir string
	// Ephemeral trades durability for speed, for tests: initdb --no-sync,
	// fsync, synchronous_commit and full_page_writes off. Stop then removes
	// the cluster directory.
	Ephemeral bool
	// Logger receives progress and warnings. It may be nil.
	Logger *slog.Logger
	// TCPPort, when set, makes the server listen on 127.0.0.1:TCPPort
	// too (and names its socket file after it). With trust
	// authentication any local user can then connect as a superuser, so
	// it is for test clusters whose nodes must reach each other over
	// TCP (Citus), never for the development server.
	TCPPort int
	// Settings are extra server settings, "name=value" (for example
	// "shared_preload_libraries=citus"), passed with -c at every start.
	Settings []string
}

// Cluster is a private PostgreSQL cluster run from the locally installed
// binaries. It listens only on a unix socket in a fresh directory under
// /tmp, with trust authentication, so it is meant for development and
// tests, not for production data.
type Cluster struct {
	binDir    string
	dir       string // the cluster directory actually used
	origDir   string // absolute Opts.DataDir; differs from dir after a fallback
	sockDir   string
	ephemeral bool
	tcpPort   int
	settings  []string
	log       *slog.Logger
	runAs     *pgAccount // nil unless we are root

	stopOnce sync.Once
	stopErr  error
}

// pgAccount is the OS account the server processes run as.
type pgAccount struct {
	uid, gid uint32
	groups   []uint32 // every group the account is in, primary included
}

// Start starts (initialising it first if needed) a private cluster
// in opts.DataDir and waits until it accepts connections. The caller must
// call Stop. If no PostgreSQL binaries are installed the error wraps
// ErrNoPostgres.
func Start(ctx context.Context, opts Opts) (*Cluster, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.DataDir == "" {
		return nil, errors.New("embedded postgres: Opts.DataDir is empty")
	}
	binDir, major, err := findPGBinaries(ctx, os.Getenv("PATH"), pgLibRoot)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("embedded postgres: data dir: %w", err)
	}
	e := &Cluster{binDir: binDir, origDir: abs, ephemeral: opts.Ephemeral, tcpPort: opts.TCPPort, settings: opts.Settings, log: log}

	if os.Geteuid() == 0 {
		if e.runAs, err = lookupPGAccount(pgOSUser); err != nil {
			return nil, err
		}
	}
	if e.dir, err = e.chooseDir(abs); err != nil {
		return nil, err
	}
	fresh, err := e.prepareDir()
	if err != nil {
		return nil, err
	}
	if !fresh {
		if err := e.checkNotRunning(ctx); err != nil {
			return nil, err
		}
	}

	// The socket goes in its own short directory: unix socket paths are
	// limited to 107 bytes, which a data dir under a deep home or temp dir
	// can exceed, and a fresh directory per start means two clusters (say,
	// two test binaries) never fight over one socket name.
	if e.sockDir, err = os.MkdirTemp("/tmp", "qpg"); err != nil {
		return nil, fmt.Errorf("embedded postgres: socket dir: %w", err)
	}
	if err := e.handOver(e.sockDir, 0o755); err != nil {
		os.RemoveAll(e.sockDir)
		return nil, fmt.Errorf("embedded postgres: socket dir: %w", err)
	}

	if err := e.start(ctx, fresh, major); err != nil {
		// A pg_ctl we killed (ctx done) or that gave up waiting may
		// leave a postmaster starting up behind it; do not leak it.
		// Any other failure must not stop anything: the server on
		// this directory could be one another process started just
		// after checkNotRunning.
		if ctx.Err() != nil || strings.Contains(err.Error(), "did not start in time") {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			_, _ = e.run(stopCtx, "pg_ctl", "stop", "-w", "-D", e.dir, "-m", "immediate")
			cancel()
		}
		os.RemoveAll(e.sockDir)
		if fresh && e.ephemeral {
			e.removeClusterDir()
		}
		return nil, err
	}
	log.Info("private PostgreSQL started", "dir", e.dir, "socket_dir", e.sockDir, "bin", binDir, "version", major, "ephemeral", e.ephemeral)
	return e, nil
}

// start runs initdb when the directory is fresh, then pg_ctl start.
func (e *Cluster) start(ctx context.Context, fresh bool, major int) error {
	if fresh {
		args := []string{"-D", e.dir, "-U", pgSuperuser, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-instructions"}
		if e.ephemeral {
			// Skip the fsync of every file initdb wrote; a test
			// cluster that loses power is thrown away anyway.
			args = append(args, "--no-sync")
		}
		e.log.Info("initialising PostgreSQL cluster", "dir", e.dir, "version", major)
		if out, err := e.run(ctx, "initdb", args...); err != nil {
			return fmt.Errorf("embedded postgres: initdb -D %s: %w\n%s", e.dir, err, out)
		}
	}

	// pg_ctl hands -o to /bin/sh, hence the shell quoting. listen_addresses
	// is empty so nothing listens on TCP: with trust authentication any
	// client that reaches the server is a superuser, so only the socket,
	// with mode 0700 (the server's OS user, and root), may reach it.
	listen := "''"
	if e.tcpPort > 0 {
		listen = "127.0.0.1"
	}
	serverOpts := []string{
		"-c", "listen_addresses=" + listen,
		"-c", "unix_socket_directories=" + pgShellQuote(e.sockDir),
		"-c", "unix_socket_permissions=0700",
		"-c", "port=" + e.port(),
	}
	for _, kv := range e.settings {
		serverOpts = append(serverOpts, "-c", pgShellQuote(kv))
	}
	if e.ephemeral {
		serverOpts = append(serverOpts,
			"-c", "fsync=off",
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
		)
	}
	logFile := filepath.Join(e.dir, "server.log")
	out, err := e.run(ctx, "pg_ctl", "start", "-w", "-t", pgCtlTimeout,
		"-D", e.dir, "-l", logFile, "-o", strings.Join(serverOpts, " "))
	if err != nil {
		return fmt.Errorf("embedded postgres: pg_ctl start -D %s: %w\n%s\n--- last lines of %s ---\n%s",
			e.dir, err, out, logFile, pgTail(logFile, 20))
	}
	return nil
}

// OwnerURL returns a connection URL for the superuser postgres to database
// dbname (for example "postgres" or "quarters"), over the unix socket.
// Migrations run with it.
func (e *Cluster) OwnerURL(dbname string) string { return e.url(pgSuperuser, dbname) }

// AppURL returns a connection URL for the role quarters_app to database
// dbname, over the unix socket. The role exists once Migrate has run.
func (e *Cluster) AppURL(dbname string) string { return e.url(pgEmbeddedAppRole, dbname) }

func (e *Cluster) url(role, dbname string) string {
	u := url.URL{
		Scheme: "postgres",
		User:   url.User(role),
		Path:   "/" + dbname,
		// libpq and pgx both take a socket directory as host. TLS
		// means nothing on a unix socket, so say so rather than
		// have clients try it.
		RawQuery: url.Values{"host": {e.sockDir}, "port": {e.port()}, "sslmode": {"disable"}}.Encode(),
	}
	return u.String()
}

// port is the server's port: Opts.TCPPort, else pgPort (which then only
// names the socket file).
func (e *Cluster) port() string {
	if e.tcpPort > 0 {
		return strconv.Itoa(e.tcpPort)
	}
	return pgPort
}

// TCPPort is Opts.TCPPort: the port the server listens on at 127.0.0.1,
// or 0 when it listens only on its socket.
func (e *Cluster) TCPPort() int { return e.tcpPort }

// EnsureDatabase creates database name, owned by postgres, unless it
// already exists.
func (e *Cluster) EnsureDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, e.OwnerURL("postgres"))
	if err != nil {
		return fmt.Errorf("embedded postgres: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("embedded postgres: look up database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	// CREATE DATABASE has no IF NOT EXISTS; a concurrent creator that
	// wins the race is fine too.
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database
		err = nil
	}
	if err != nil {
		return fmt.Errorf("embedded postgres: create database %q: %w", name, err)
	}
	e.log.Info("created database", "name", name)
	return nil
}

// Stop stops the cluster (pg_ctl stop -m fast, which disconnects clients
// and shuts down cleanly), removes its socket directory and, when
// Ephemeral, the cluster directory. Calling it again returns the first
// result.
func (e *Cluster) Stop(ctx context.Context) error {
	e.stopOnce.Do(func() { e.stopErr = e.stop(ctx) })
	return e.stopErr
}

func (e *Cluster) stop(ctx context.Context) error {
	out, err := e.run(ctx, "pg_ctl", "stop", "-w", "-t", pgCtlTimeout, "-D", e.dir, "-m", "fast")
	if err != nil {
		// pg_ctl also fails when the server is already gone (it
		// crashed, or someone stopped it); that is still stopped. Only
		// a server that is still up keeps its files.
		if running, _ := e.running(ctx); running {
			return fmt.Errorf("embedded postgres: pg_ctl stop -D %s: %w\n%s", e.dir, err, out)
		}
	}
	var errs []error
	if err := os.RemoveAll(e.sockDir); err != nil {
		errs = append(errs, err)
	}
	if e.ephemeral {
		errs = append(errs, e.removeClusterDir())
	}
	e.log.Info("private PostgreSQL stopped", "dir", e.dir)
	return errors.Join(errs...)
}

// Halt stops the server (pg_ctl stop -m fast: clients are disconnected)
// but keeps its directories, so that Resume brings it back on the same
// socket, where clients' URLs still point. It is for tests of a database
// outage; Stop is still needed at the end.
func (e *Cluster) Halt(ctx context.Context) error {
	if out, err := e.run(ctx, "pg_ctl", "stop", "-w", "-t", pgCtlTimeout, "-D", e.dir, "-m", "fast"); err != nil {
		return fmt.Errorf("embedded postgres: pg_ctl stop -D %s: %w\n%s", e.dir, err, out)
	}
	e.log.Info("private PostgreSQL halted", "dir", e.dir)
	return nil
}

// Resume starts a halted server again, on the same directory and socket.
func (e *Cluster) Resume(ctx context.Context) error {
	if err := e.start(ctx, false, 0); err != nil {
		return err
	}
	e.log.Info("private PostgreSQL resumed", "dir", e.dir)
	return nil
}

// removeClusterDir deletes an ephemeral cluster. After a fallback the
// caller's DataDir was never written to; it goes too, but only if it is an
// empty directory, so nothing of the caller's is ever lost.
func (e *Cluster) removeClusterDir() error {
	err := os.RemoveAll(e.dir)
	if e.origDir != e.dir {
		_ = os.Remove(e.origDir)
	}
	return err
}

// running reports whether a postmaster is alive on the cluster directory.
// pg_ctl status exits 0 when it is and 3 when it is not.
func (e *Cluster) running(ctx context.Context) (bool, error) {
	out, err := e.run(ctx, "pg_ctl", "status", "-D", e.dir)
	if err == nil {
		return true, nil
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && exitErr.ExitCode() == 3 {
		return false, nil
	}
	return false, fmt.Errorf("embedded postgres: pg_ctl status -D %s: %w\n%s", e.dir, err, out)
}

// checkNotRunning refuses a cluster another postmaster is serving. A stale
// postmaster.pid left by a crash is fine (postgres checks the pid and takes
// over), but a live server would make pg_ctl start fail with a lock-file
// message that does not say what to do, and its socket is somewhere we do
// not know.
func (e *Cluster) checkNotRunning(ctx context.Context) error {
	running, err := e.running(ctx)
	if err != nil || !running {
		return err
	}
	pidFile := filepath.Join(e.dir, "postmaster.pid")
	pid := "?"
	if b, err := os.ReadFile(pidFile); err == nil {
		pid, _, _ = strings.Cut(string(b), "\n")
	}
	return fmt.Errorf("embedded postgres: another PostgreSQL server (pid %s) is already running on data directory %s: "+
		"stop it with `%s` or, if pid %s is not a PostgreSQL server, delete %s",
		pid, e.dir, e.stopCommand(), pid, pidFile)
}

// stopCommand is a shell command that stops the server on the cluster
// directory, for error messages. As root it runs pg_ctl as the postgres
// account: pg_ctl refuses to run as root, and the files are that
// account's.
func (e *Cluster) stopCommand() string {
	cmd := pgShellWord(filepath.Join(e.binDir, "pg_ctl")) + " stop -D " + pgShellWord(e.dir)
	if e.runAs != nil {
		return "runuser -u " + pgOSUser + " -- " + cmd
	}
	return cmd
}

// chooseDir returns the directory the cluster lives in: dataDir, unless we
// are root and the postgres account cannot reach it. Typical case: a data
// dir under /root, which is mode 0700. The server process runs as postgres
// and must traverse every ancestor of its data directory, and loosening the
// permissions of someone's home directory is not ours to do. So the cluster
// goes to a directory under the temp dir whose name is derived from
// dataDir, which keeps the same cluster across restarts of the same
// configuration (until the temp dir is cleaned).
func (e *Cluster) chooseDir(dataDir string) (string, error) {
	if e.runAs == nil {
		return dataDir, nil
	}
	ok, err := e.runAs.canReach(dataDir)
	if err != nil {
		return "", fmt.Errorf("embedded postgres: data dir %s: %w", dataDir, err)
	}
	if ok {
		return dataDir, nil
	}
	base := os.TempDir()
	if ok, _ := e.runAs.canReach(filepath.Join(base, "x")); !ok {
		base = "/tmp"
	}
	sum := sha256.Sum256([]byte(dataDir))
	dir := filepath.Join(base, "quarters-pg-"+hex.EncodeToString(sum[:])[:12])
	e.log.Warn("the postgres OS user cannot reach the data directory, using another directory instead",
		"data_dir", dataDir, "using", dir)
	return dir, nil
}

// prepareDir creates the cluster directory if needed, hands it to the
// server's OS account, and reports whether it needs initdb.
func (e *Cluster) prepareDir() (fresh bool, err error) {
	fi, err := os.Lstat(e.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := e.mkdirParents(filepath.Dir(e.dir)); err != nil {
			return false, fmt.Errorf("embedded postgres: create %s: %w", filepath.Dir(e.dir), err)
		}
		if err := os.Mkdir(e.dir, 0o700); err != nil {
			return false, fmt.Errorf("embedded postgres: create data dir: %w", err)
		}
		if err := e.handOver(e.dir, 0o700); err != nil {
			return false, fmt.Errorf("embedded postgres: data dir: %w", err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("embedded postgres: data dir: %w", err)
	case fi.Mode()&fs.ModeSymlink != 0 && e.dir != e.origDir:
		// The fallback lives in a world-writable temp dir: a symlink
		// there may have been planted by another user.
		return false, fmt.Errorf("embedded postgres: %s is a symbolic link; remove it", e.dir)
	}
	if fi, err = os.Stat(e.dir); err != nil {
		return false, fmt.Errorf("embedded postgres: data dir: %w", err)
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("embedded postgres: data dir %s is not a directory", e.dir)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "PG_VERSION")); err == nil {
		e.log.Info("reusing PostgreSQL cluster", "dir", e.dir)
		return false, nil
	}
	entries, err := os.ReadDir(e.dir)
	if err != nil {
		return false, fmt.Errorf("embedded postgres: data dir: %w", err)
	}
	if len(entries) > 0 {
		return false, fmt.Errorf("embedded postgres: data dir %s is not empty and holds no PostgreSQL cluster (no PG_VERSION): "+
			"use an empty or new directory", e.dir)
	}
	if e.runAs != nil && e.dir != e.origDir {
		// An empty fallback dir may have been created by anyone; take
		// it over only if it is ours or the server account's.
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 0 && st.Uid != e.runAs.uid {
			return false, fmt.Errorf("embedded postgres: %s belongs to uid %d; remove it", e.dir, st.Uid)
		}
	}
	if err := e.handOver(e.dir, 0o700); err != nil {
		return false, fmt.Errorf("embedded postgres: data dir: %w", err)
	}
	return true, nil
}

// mkdirParents is os.MkdirAll, except that when we are root the directories
// it creates are made 0755 whatever the umask, so the postgres account can
// traverse them (chooseDir only checked the ones that already existed).
func (e *Cluster) mkdirParents(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := e.mkdirParents(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if e.runAs != nil {
		return os.Chmod(dir, 0o755)
	}
	return nil
}

// handOver sets dir's mode and, when we are root, gives it to the server's
// OS account, which must own its data and socket directories.
func (e *Cluster) handOver(dir string, mode fs.FileMode) error {
	if err := os.Chmod(dir, mode); err != nil {
		return err
	}
	if e.runAs == nil {
		return nil
	}
	return os.Chown(dir, int(e.runAs.uid), int(e.runAs.gid))
}

// canReach reports whether the account can traverse every existing
// ancestor of path (path itself is the account's own directory).
// Ancestors that do not exist yet are created 0755 by mkdirParents.
// Symbolic links are resolved first, since the check applies to the
// directories the kernel actually walks. ACLs are ignored: missing an
// ACL grant only sends the cluster to the fallback directory.
func (a *pgAccount) canReach(path string) (bool, error) {
	resolved, err := pgResolveExisting(path)
	if err != nil {
		return false, err
	}
	for dir := filepath.Dir(resolved); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return false, err
		case !a.canTraverse(fi):
			return false, nil
		}
		if dir == filepath.Dir(dir) {
			return true, nil
		}
	}
}

// canTraverse applies the kernel's rule: the owner bits if the account owns
// the directory, else the group bits if it is in the group, else the other
// bits.
func (a *pgAccount) canTraverse(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == a.uid:
		return perm&0o100 != 0
	case slices.Contains(a.groups, st.Gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// pgResolveExisting resolves symbolic links in the longest existing prefix
// of path and appends the rest unchanged.
func pgResolveExisting(path string) (string, error) {
	var rest []string
	for p := path; ; p = filepath.Dir(p) {
		resolved, err := filepath.EvalSymlinks(p)
		if err == nil {
			slices.Reverse(rest)
			return filepath.Join(append([]string{resolved}, rest...)...), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		if p == filepath.Dir(p) {
			return path, nil
		}
		rest = append(rest, filepath.Base(p))
	}
}

// lookupPGAccount finds the OS account to run the server as when we are
// root.
func lookupPGAccount(name string) (*pgAccount, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("embedded postgres: running as root, and initdb and postgres refuse to run as root, "+
			"but there is no %q OS user to run them as (%v): create it (useradd --system %s) or run as another user",
			name, err, name)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("embedded postgres: OS user %s: %w", name, err)
	}
	a := &pgAccount{uid: uint32(uid), gid: uint32(gid), groups: []uint32{uint32(gid)}}
	// Supplementary groups matter both for the traversal check and for
	// the processes: without them setgroups would drop them all.
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil && !slices.Contains(a.groups, uint32(g)) {
				a.groups = append(a.groups, uint32(g))
			}
		}
	}
	return a, nil
}

// run runs one of the PostgreSQL binaries and returns its combined output.
func (e *Cluster) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(e.binDir, name), args...)
	// Our working directory may be one the postgres account cannot
	// enter (root's home), which makes initdb and pg_ctl complain; every
	// path we pass is absolute, so "/" does.
	cmd.Dir = "/"
	cmd.Env = pgServerEnv()
	if e.runAs != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
			Uid: e.runAs.uid, Gid: e.runAs.gid, Groups: e.runAs.groups,
		}}
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	// pg_ctl start leaves the postmaster running; pg_ctl points its
	// output at server.log, but should anything ever inherit our pipe,
	// Wait must not block for the server's lifetime.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// pgServerEnv is our environment without PG* variables: we pass every
// setting explicitly, and a developer's PGDATA, PGPORT or PGHOST for some
// other server must not leak into this one.
func pgServerEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PG") })
}

// pgShellQuote quotes s for /bin/sh.
func pgShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// pgShellWord is s as one /bin/sh word: as it is when it holds nothing
// the shell would interpret (the usual path), else quoted, so a command
// in a message reads plainly and still works when pasted.
func pgShellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:,=@%") == "" {
		return s
	}
	return pgShellQuote(s)
}

// pgTail returns the last n lines of a file, for error messages; a server
// that failed to start explains why only in its log.
func pgTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	defer f.Close()
	// The log grows across restarts; its end is enough.
	const maxRead = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > maxRead {
		_, _ = f.Seek(-maxRead, io.SeekEnd)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// findPGBinaries returns the directory holding initdb, pg_ctl and postgres
// of version pgMinMajor or later, and that version. It looks first in the
// directories of pathList (a PATH value), then in searchRoot/*/bin from the
// highest version down (the Debian layout, searchRoot being
// /usr/lib/postgresql). All three must come from one directory: mixing
// versions breaks initdb. The inputs are parameters so tests can make the
// search fail.
func findPGBinaries(ctx context.Context, pathList, searchRoot string) (dir string, major int, err error) {
	var candidates []string
	for _, d := range filepath.SplitList(pathList) {
		// Relative PATH entries (including "", meaning ".") would
		// resolve against the working directory; like exec.LookPath,
		// do not trust them.
		if filepath.IsAbs(d) {
			candidates = append(candidates, d)
		}
	}
	versioned, _ := filepath.Glob(filepath.Join(searchRoot, "*", "bin"))
	slices.SortFunc(versioned, func(a, b string) int {
		return pgCompareVersions(filepath.Base(filepath.Dir(b)), filepath.Base(filepath.Dir(a)))
	})
	candidates = append(candidates, versioned...)

	var tooOld []string
	for _, d := range candidates {
		if !pgHasBinaries(d) {
			continue
		}
		major, err := pgServerMajor(ctx, d)
		if err != nil {
			continue
		}
		if major < pgMinMajor {
			tooOld = append(tooOld, fmt.Sprintf("%d in %s", major, d))
			continue
		}
		return d, major, nil
	}
	where := fmt.Sprintf("on PATH or under %s/*/bin", searchRoot)
	advice := fmt.Sprintf("install PostgreSQL %d or later (Debian/Ubuntu: apt-get install postgresql) or set DATABASE_URL to an existing database", pgMinMajor)
	if len(tooOld) > 0 {
		return "", 0, &pgNoBinariesError{fmt.Sprintf("the PostgreSQL server binaries found %s are too old (%s): %s",
			where, strings.Join(tooOld, ", "), advice)}
	}
	return "", 0, &pgNoBinariesError{fmt.Sprintf("PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found %s: %s",
		where, advice)}
}

// pgHasBinaries reports whether dir holds executable initdb, pg_ctl and
// postgres files.
func pgHasBinaries(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

var pgVersionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// pgServerMajor asks postgres for its version ("postgres (PostgreSQL)
// 15.8 ..."). postgres answers --version before its refusal to run as
// root, so this needs no change of user.
func pgServerMajor(ctx context.Context, dir string) (int, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "postgres"), "--version").Output()
	if err != nil {
		return 0, err
	}
	m := pgVersionRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("unrecognised postgres --version output %q", out)
	}
	return strconv.Atoi(string(m[1]))
}

// pgCompareVersions orders directory names like "9.6" and "15"
// numerically; a name that is not a version sorts first.
func pgCompareVersions(a, b string) int {
	parse := func(s string) []int {
		var v []int
		for _, f := range strings.Split(s, ".") {
			n, err := strconv.Atoi(f)
			if err != nil {
				return nil
			}
			v = append(v, n)
		}
		return v
	}
	return slices.Compare(parse(a), parse(b))
}
