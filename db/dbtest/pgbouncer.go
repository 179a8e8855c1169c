package dbtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// PgBouncer is a private PgBouncer in transaction mode (pool_mode =
// transaction) in front of one test's database, as production runs
// PgBouncer: every transaction may land on another server connection, and
// a server connection serves many clients one transaction at a time.
type PgBouncer struct {
	// Addr is where PgBouncer listens (127.0.0.1:port).
	Addr string
	dir  string
}

// PgBouncerOpts adjust NewPgBouncer; nil means defaults.
type PgBouncerOpts struct {
	// PoolSize is PgBouncer's default_pool_size: server connections per
	// database and user (default 4). Fewer server connections than the
	// clients' pools have makes every server connection serve many
	// clients in turn, which is what the tests must exercise.
	PoolSize int
}

// pgbouncerBin is where Debian installs PgBouncer (apt-get install
// pgbouncer); PATH is searched too.
const pgbouncerBin = "/usr/sbin/pgbouncer"

// NewPgBouncer starts PgBouncer for t in front of the server backendURL
// names (any database and role on it, authenticated by trust; the
// server must trust them too, as the test clusters do). It stops when t
// ends. Without a pgbouncer binary it fails t, saying what to install.
func NewPgBouncer(t testing.TB, backendURL string, opts *PgBouncerOpts) *PgBouncer {
	t.Helper()
	if opts == nil {
		opts = &PgBouncerOpts{}
	}
	bin := pgbouncerBin
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("pgbouncer"); err != nil {
			t.Fatal("dbtest: no pgbouncer binary: install PgBouncer (Debian/Ubuntu: apt-get install pgbouncer)")
		}
	}
	cfg, err := pgconn.ParseConfig(backendURL)
	if err != nil {
		t.Fatalf("dbtest: pgbouncer backend: %v", err)
	}
	// PgBouncer, like postgres, refuses to run as root.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		if cred, err = osAccount("postgres"); err != nil {
			t.Fatalf("dbtest: pgbouncer: running as root and %v", err)
		}
	}
	// Not t.TempDir(): the postgres account must reach the directory.
	dir, err := os.MkdirTemp("", "qpgb")
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatalf("dbtest: %v", err)
		}
	}
	var users strings.Builder
	for _, u := range []string{appRole, "postgres", cfg.User} {
		fmt.Fprintf(&users, "%q \"\"\n", u)
	}
	if err := os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(users.String()), 0o644); err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	poolSize := opts.PoolSize
	if poolSize <= 0 {
		poolSize = 4
	}
	// A free port can be taken between choosing and binding it: try a few.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("dbtest: %v", err)
		}
		b, err := startPgBouncer(t, bin, dir, cred, cfg, port, poolSize)
		if err == nil {
			return b
		}
		lastErr = err
	}
	t.Fatalf("dbtest: pgbouncer: %v", lastErr)
	return nil
}

// startPgBouncer writes the configuration and runs PgBouncer in the
// foreground until t ends, returning once it accepts connections.
func startPgBouncer(t testing.TB, bin, dir string, cred *syscall.Credential, backend *pgconn.Config, port, poolSize int) (*PgBouncer, error) {
	ini := fmt.Sprintf(`[databases]
* = host=%s port=%d

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits
logfile = %s
log_connections = 0
log_disconnections = 0
`, backend.Host, backend.Port, port, filepath.Join(dir, "userlist.txt"), poolSize, filepath.Join(dir, "pgbouncer.log"))
	iniPath := filepath.Join(dir, "pgbouncer.ini")
	if err := os.WriteFile(iniPath, []byte(ini), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, iniPath)
	cmd.Dir = "/"
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		// SIGINT: PgBouncer's immediate shutdown.
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			return nil, fmt.Errorf("exited (%v): %s\n%s", err, out.String(), log)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, errors.New("did not listen within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(stop)
	return &PgBouncer{Addr: addr, dir: dir}, nil
}

// URL returns dbURL (a URL of the server behind b) pointed at b instead:
// the same database and role, through PgBouncer.
func (b *PgBouncer) URL(dbURL string) string {
	cfg, err := pgconn.ParseConfig(dbURL)
	if err != nil {
		panic(fmt.Sprintf("dbtest: %v", err))
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(cfg.User),
		Host:     b.Addr,
		Path:     "/" + cfg.Database,
		RawQuery: url.Values{"sslmode": {"disable"}}.Encode(),
	}
	return u.String()
}

// freePort is a TCP port on 127.0.0.1 that nothing listened on a moment
// ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// osAccount is the credential of the OS account name, with its groups.
func osAccount(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("there is no %q OS user to run as: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	c := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil && uint32(g) != c.Gid {
				c.Groups = append(c.Groups, uint32(g))
			}
		}
	}
	return c, nil
}
