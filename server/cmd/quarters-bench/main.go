// Command quarters-bench is Quarters' load test: it seeds many tenants with
// documents and drives DocumentService.ListDocuments against a real server
// process over the Connect protocol, then prints throughput and latency.
//
//	go run ./server/cmd/quarters-bench -tenants=1000 -docs=100 -concurrency=32 -duration=20s
//
// (The limiter subcommand, in limiter.go, measures the rate limiter's
// accuracy against Redis instead: go run ./server/cmd/quarters-bench limiter.)
//
// (task bench runs exactly that). Everything it needs is private and thrown
// away afterwards: an ephemeral PostgreSQL cluster from the local binaries,
// and a freshly built server binary listening on 127.0.0.1 only. With
// -database-url and -owner-database-url it uses an existing database instead
// and leaves its own tenants behind there.
//
// The server runs as a separate process, built like production, so the
// figures include real HTTP, serialisation, authentication and the
// per-request tenant transaction, and so the load generator's own
// allocations and goroutines do not share a heap or a GC with the server.
// They still share the machine's CPUs, which matters on small machines:
// compare runs on the same hardware only.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"

	"github.com/quarters-dev/quarters/db"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
)

// options are the command-line flags.
type options struct {
	rateLimit    string
	redisURL     string
	tenants      int
	docs         int
	concurrency  int
	duration     time.Duration
	warmup       time.Duration
	pageSize     int
	json         bool
	gzip         bool
	seedWorkers  int
	reqTimeout   time.Duration
	appURL       string
	ownerURL     string
	serverOutput bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "compare" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := compareMain(ctx, os.Args[2:])
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "quarters-bench compare:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "limiter" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := limiterMain(ctx, os.Args[2:])
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "quarters-bench limiter:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.IntVar(&o.tenants, "tenants", 1000, "number of tenants to create, each with one project and one API key")
	flag.IntVar(&o.docs, "docs", 100, "documents per tenant, inserted directly in SQL")
	flag.IntVar(&o.concurrency, "concurrency", 32, "concurrent request loops (each has its own connection)")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "measured load duration (after the warm-up)")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before measuring starts, not counted (fills pools and caches)")
	flag.IntVar(&o.pageSize, "page-size", 50, "ListDocuments page_size (1-100)")
	flag.BoolVar(&o.json, "json", false, "use the Connect protocol's JSON codec instead of binary protobuf")
	flag.BoolVar(&o.gzip, "gzip", true, "accept gzip-compressed responses, as connect-go clients do by default")
	flag.IntVar(&o.seedWorkers, "seed-workers", 16, "concurrent CreateTenant/CreateProject calls while seeding")
	flag.DurationVar(&o.reqTimeout, "request-timeout", 10*time.Second, "timeout of a single call; a call that takes longer counts as an error")
	flag.StringVar(&o.appURL, "database-url", "", "use this existing database, as the server's app role (needs -owner-database-url; default: a private ephemeral cluster)")
	flag.StringVar(&o.ownerURL, "owner-database-url", "", "the schema owner's URL for the same database: migrates and seeds documents (needs -database-url)")
	flag.StringVar(&o.rateLimit, "ratelimit", "on", "the server's rate limiting: on, or off to measure its cost (QUARTERS_RATE_LIMIT)")
	flag.StringVar(&o.redisURL, "redis-url", "", "REDIS_URL for the server: rate limits and tenant cache in Redis (default: in process)")
	flag.BoolVar(&o.serverOutput, "server-output", false, "copy the server's stdout to stderr (its stderr, warnings and errors only, is always shown)")
	flag.Parse()

	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "quarters-bench:", err)
		flag.Usage()
		os.Exit(2)
	}
	// Ctrl-C or SIGTERM cancels ctx; run's deferred clean-up then stops
	// the server and the database instead of leaking them.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	if ctx.Err() != nil && err != nil {
		err = fmt.Errorf("interrupted: %w", err)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "quarters-bench:", err)
		os.Exit(1)
	}
}

func (o *options) validate() error {
	switch {
	case o.rateLimit != "on" && o.rateLimit != "off":
		return fmt.Errorf("-ratelimit=%q: want on or off", o.rateLimit)
	case flag.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	case o.tenants < 1 || o.tenants > 99999:
		// The slug format below has room for five digits.
		return errors.New("-tenants must be between 1 and 99999")
	case o.docs < 0:
		return errors.New("-docs must not be negative")
	case o.concurrency < 1:
		return errors.New("-concurrency must be at least 1")
	case o.duration <= 0:
		return errors.New("-duration must be positive")
	case o.warmup < 0:
		return errors.New("-warmup must not be negative")
	case o.pageSize < 1 || o.pageSize > 100:
		// page_size 0 would mean "server default", which would make
		// the expected count depend on the server's choice.
		return errors.New("-page-size must be between 1 and 100")
	case o.seedWorkers < 1:
		return errors.New("-seed-workers must be at least 1")
	case o.reqTimeout <= 0:
		return errors.New("-request-timeout must be positive")
	case (o.appURL == "") != (o.ownerURL == ""):
		// The server must connect as the app role (it refuses an
		// owner or superuser), and migrating and seeding need the
		// owner: one URL is not enough for either.
		return errors.New("-database-url and -owner-database-url go together")
	}
	return nil
}

func run(ctx context.Context, o options) (err error) {
	// Clean-up must run even after ctx is cancelled by Ctrl-C.
	cleanupCtx := context.WithoutCancel(ctx)

	// Build first: a compile error should fail the run in seconds, before
	// a database is started for nothing.
	binDir, err := os.MkdirTemp("", "qbench-bin")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	bin := filepath.Join(binDir, "quarters")
	t0 := time.Now()
	if err := buildServer(ctx, bin); err != nil {
		return err
	}
	fmt.Printf("built server in %s\n", round(time.Since(t0)))

	appURL, ownerURL := o.appURL, o.ownerURL
	slugPrefix := "bench"
	if appURL == "" {
		t0 = time.Now()
		// MkdirTemp directly under the temp dir (not a nested dir in
		// another 0700 one): when we are root, the cluster is run as
		// the postgres OS user, which must be able to reach it.
		dataDir, err := os.MkdirTemp("", "qbench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dataDir) // Stop removes it too; this covers a failed start
		emb, err := db.StartEmbedded(ctx, db.EmbeddedOpts{DataDir: dataDir, Ephemeral: true})
		if err != nil {
			return err
		}
		defer func() {
			if serr := emb.Stop(cleanupCtx); serr != nil {
				err = errors.Join(err, fmt.Errorf("stop postgres: %w", serr))
			}
		}()
		if err := emb.EnsureDatabase(ctx, "quarters"); err != nil {
			return err
		}
		appURL, ownerURL = emb.AppURL("quarters"), emb.OwnerURL("quarters")
		fmt.Printf("started ephemeral PostgreSQL in %s\n", round(time.Since(t0)))
	} else {
		// A shared database may already hold an earlier run's
		// "bench-00001"; a per-run tag keeps slugs unique.
		slugPrefix += "-" + randomHex(3)
	}
	// Migrate is idempotent, so this is right for an existing database too.
	if err := db.Migrate(ctx, ownerURL); err != nil {
		return err
	}

	// One address signs up every tenant: lift the sign-up limit.
	env := []string{"QUARTERS_RATE_LIMIT=" + o.rateLimit, "QUARTERS_SIGNUP_RATE=1000000"}
	if o.redisURL != "" {
		env = append(env, "REDIS_URL="+o.redisURL)
	}
	srv, err := startServer(ctx, bin, appURL, o.serverOutput, env)
	if err != nil {
		return err
	}
	defer func() {
		if serr := srv.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	fmt.Printf("server listening on %s\n", srv.baseURL)

	client := newHTTPClient(o)
	var copts []connect.ClientOption
	if o.json {
		copts = append(copts, connect.WithProtoJSON())
	}
	if !o.gzip {
		// nil constructors unregister connect-go's default gzip, so
		// the server sends responses uncompressed.
		copts = append(copts, connect.WithAcceptCompression("gzip", nil, nil))
	}

	tenants, err := seed(ctx, o, client, srv.baseURL, ownerURL, slugPrefix, copts)
	if err != nil {
		return err
	}

	res, err := drive(ctx, o, client, srv.baseURL, tenants, copts)
	if err != nil {
		return err
	}
	res.print(os.Stdout, o)
	if res.errors > 0 || res.wrong > 0 {
		return fmt.Errorf("%d failed calls and %d responses with the wrong number of documents", res.errors, res.wrong)
	}
	return nil
}

// buildServer compiles ./server/cmd/quarters into bin. It runs from the
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
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./server/cmd/quarters")
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

// tenantKey is a seeded tenant and the header value that authenticates as it.
type tenantKey struct {
	id     string
	bearer string // "Bearer <api_key_secret>"
}

// seed creates the tenants and their projects through the API (so keys
// and tenants are exactly what sign-up makes), then bulk-inserts their
// documents in SQL, which is orders of magnitude faster than 100k
// CreateDocument calls and is not what we measure.
func seed(ctx context.Context, o options, client *http.Client, baseURL, ownerURL, slugPrefix string, copts []connect.ClientOption) ([]tenantKey, error) {
	t0 := time.Now()
	tenantSvc := quartersv1connect.NewTenantServiceClient(client, baseURL, copts...)

	tenants := make([]tenantKey, o.tenants)
	var (
		next     atomic.Int64 // index of the next tenant to create
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for range min(o.seedWorkers, o.tenants) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= o.tenants || sctx.Err() != nil {
					return
				}
				slug := fmt.Sprintf("%s-%05d", slugPrefix, i+1)
				tr, err := tenantSvc.CreateTenant(sctx, connect.NewRequest(&quartersv1.CreateTenantRequest{
					Slug: slug, Name: "Bench " + slug, OwnerEmail: "owner@" + slug + ".example.com",
				}))
				if err != nil {
					fail(fmt.Errorf("CreateTenant %s: %w", slug, err))
					return
				}
				// No authenticated call yet: the server caches a tenant's
				// record (plan, limits) on its first one, and the limits
				// are lifted in SQL below, before that happens.
				tenants[i] = tenantKey{id: tr.Msg.GetTenant().GetId(), bearer: "Bearer " + tr.Msg.GetApiKeySecret()}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	apiTime := time.Since(t0)

	t1 := time.Now()
	conn, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		return nil, fmt.Errorf("connect as owner: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ids := make([]string, len(tenants))
	for i, t := range tenants {
		ids[i] = t.id
	}
	if err := seedRows(ctx, conn, ids, o.docs); err != nil {
		return nil, err
	}
	docTime := time.Since(t1)
	t2 := time.Now()
	// Fresh statistics, so the planner sees 100k rows and picks the list
	// index as it would on a real database, not plans for empty tables.
	if _, err := conn.Exec(ctx, "ANALYZE tenants, api_keys, projects, documents"); err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	fmt.Printf("seeded %d tenants via the API in %s (%.0f tenants/s); projects, lifted limits and %d documents in SQL in %s; ANALYZE in %s; total %s\n",
		o.tenants, round(apiTime), float64(o.tenants)/apiTime.Seconds(),
		o.tenants*o.docs, round(docTime), round(time.Since(t2)), round(time.Since(t0)))
	return tenants, nil
}

// insertDocumentsSQL gives each of the tenants' projects n documents with
// distinct create_time values (so the newest-first order and page cursors
// are well defined) and about 200 bytes of content that differs per row
// (so compression is not flattered by identical rows).
// seedSQL runs as the owner for tenants $1 with $2 documents each. The
// project is made here rather than through the API for the reason given in
// seed; the overrides lift the plan's rate limit and monthly quota, since
// the load test measures the server, not its refusals (the limiter still
// runs on every call: -ratelimit=off removes it, to compare).
var seedSQL = []string{
	`INSERT INTO projects (tenant_id, name)
SELECT t, 'Bench project' FROM unnest($1::uuid[]) AS t WHERE $2::int >= 0`,
	`INSERT INTO tenant_overrides (tenant_id, requests_per_minute, burst, max_api_calls_per_month)
SELECT t, 1000000, 100000, 1000000000000 FROM unnest($1::uuid[]) AS t WHERE $2::int >= 0`,
	insertDocumentsSQL,
}

const insertDocumentsSQL = `
INSERT INTO documents (tenant_id, project_id, title, content, create_time, update_time)
SELECT p.tenant_id, p.id, 'Document ' || g,
       left(repeat(md5(p.id::text || ':' || g), 7), 200),
       now() - g * interval '1 second', now() - g * interval '1 second'
FROM projects p CROSS JOIN generate_series(1, $2::int) AS g
WHERE p.tenant_id = ANY ($1::uuid[])`

// seedRows runs seedSQL through the owner connection. A superuser (the
// embedded cluster's postgres) or BYPASSRLS role skips row-level security,
// so one statement seeds every tenant. An ordinary owner is subject to the
// forced tenant_isolation policies, so it must name each tenant in turn;
// a pipelined batch in one transaction keeps that reasonably quick.
func seedRows(ctx context.Context, conn *pgx.Conn, tenantIDs []string, n int) error {
	var bypass bool
	if err := conn.QueryRow(ctx,
		"SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user").Scan(&bypass); err != nil {
		return fmt.Errorf("check owner role: %w", err)
	}
	if bypass {
		for _, q := range seedSQL {
			if _, err := conn.Exec(ctx, q, tenantIDs, n); err != nil {
				return fmt.Errorf("seed: %w", err)
			}
		}
		return nil
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var b pgx.Batch
		for _, id := range tenantIDs {
			// is_local: the setting ends with the transaction, like
			// the server's own.
			b.Queue("SELECT set_config('app.tenant_id', $1, true)", id)
			for _, q := range seedSQL {
				b.Queue(q, []string{id}, n)
			}
		}
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return fmt.Errorf("insert documents: %w", err)
		}
		return nil
	})
}

// result is what the request loops measured.
type result struct {
	latencies []time.Duration // sorted, counted calls only (errors included)
	errors    int             // calls that returned an error
	wrong     int             // calls that succeeded with the wrong number of documents
	elapsed   time.Duration   // from the end of warm-up until the last counted call finished
	firstErr  string          // an example, for diagnosis
	firstBad  string
}

// drive runs the request loops: warm-up, then the measured window. Each
// loop records into its own slice, so the hot path takes no locks.
func drive(ctx context.Context, o options, client *http.Client, baseURL string, tenants []tenantKey, copts []connect.ClientOption) (*result, error) {
	docs := quartersv1connect.NewDocumentServiceClient(client, baseURL, copts...)
	want := min(o.docs, o.pageSize)

	type loopResult struct {
		lat           []time.Duration
		errors, wrong int
		firstErr      string
		firstBad      string
		lastEnd       time.Time
	}
	// Preallocate for a generous 20,000 calls/s overall, so append does
	// not reallocate (and copy) inside the measured window on any
	// machine this is likely to run on; faster runs merely grow it.
	perLoop := max(1024, int(o.duration.Seconds()*20000)/o.concurrency)
	loops := make([]loopResult, o.concurrency)

	fmt.Printf("load: %d loops, %s warm-up + %s measured, ListDocuments page_size=%d, %s\n",
		o.concurrency, o.warmup, o.duration, o.pageSize, codecName(o))
	start := time.Now()
	measureFrom := start.Add(o.warmup)
	deadline := measureFrom.Add(o.duration)
	var wg sync.WaitGroup
	for w := range loops {
		lr := &loops[w]
		lr.lat = make([]time.Duration, 0, perLoop)
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				// Loops stop issuing at the deadline; a call in
				// flight then is bounded by the client timeout.
				if !t0.Before(deadline) {
					return
				}
				tk := tenants[mrand.IntN(len(tenants))]
				req := connect.NewRequest(&quartersv1.ListDocumentsRequest{PageSize: int32(o.pageSize)})
				req.Header().Set("Authorization", tk.bearer)
				resp, err := docs.ListDocuments(ctx, req)
				t1 := time.Now()
				if err != nil && ctx.Err() != nil {
					return // interrupted: not the server's fault
				}
				if t0.Before(measureFrom) {
					continue // warm-up
				}
				lr.lat = append(lr.lat, t1.Sub(t0))
				lr.lastEnd = t1
				switch {
				case err != nil:
					lr.errors++
					if lr.firstErr == "" {
						lr.firstErr = err.Error()
					}
				case len(resp.Msg.GetDocuments()) != want:
					lr.wrong++
					if lr.firstBad == "" {
						lr.firstBad = fmt.Sprintf("tenant %s: %d documents, want %d", tk.id, len(resp.Msg.GetDocuments()), want)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	res := &result{}
	var lastEnd time.Time
	total := 0
	for i := range loops {
		total += len(loops[i].lat)
	}
	res.latencies = make([]time.Duration, 0, total)
	for i := range loops {
		lr := &loops[i]
		res.latencies = append(res.latencies, lr.lat...)
		res.errors += lr.errors
		res.wrong += lr.wrong
		if res.firstErr == "" {
			res.firstErr = lr.firstErr
		}
		if res.firstBad == "" {
			res.firstBad = lr.firstBad
		}
		if lr.lastEnd.After(lastEnd) {
			lastEnd = lr.lastEnd
		}
	}
	if total == 0 {
		return nil, errors.New("no calls completed in the measured window")
	}
	slices.Sort(res.latencies)
	// Calls that started before the deadline count, so the window is
	// until the last of them ended, not the nominal duration.
	res.elapsed = lastEnd.Sub(measureFrom)
	return res, nil
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func (r *result) print(w io.Writer, o options) {
	n := len(r.latencies)
	rps := float64(n) / r.elapsed.Seconds()
	p50, p90, p99 := percentile(r.latencies, 50), percentile(r.latencies, 90), percentile(r.latencies, 99)
	maxLat := r.latencies[n-1]
	fmt.Fprintf(w, `
ListDocuments load test (Connect, %s, page_size=%d)
  tenants        %d
  docs/tenant    %d
  concurrency    %d
  duration       %s measured (%.2fs until the last call ended), after %s warm-up
  requests       %d
  errors         %d
  wrong counts   %d
  req/s          %.1f
  latency p50    %s
  latency p90    %s
  latency p99    %s
  latency max    %s
`, codecName(o), o.pageSize, o.tenants, o.docs, o.concurrency, o.duration, r.elapsed.Seconds(), o.warmup,
		n, r.errors, r.wrong, rps, ms(p50), ms(p90), ms(p99), ms(maxLat))
	if r.firstErr != "" {
		fmt.Fprintf(w, "  first error    %s\n", r.firstErr)
	}
	if r.firstBad != "" {
		fmt.Fprintf(w, "  first wrong    %s\n", r.firstBad)
	}
	// One grep-able line for comparing runs and for scripts.
	fmt.Fprintf(w, "\nBENCH ListDocuments ratelimit=%s redis=%t tenants=%d docs=%d c=%d reqs=%d rps=%.1f p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms errors=%d wrong=%d\n",
		o.rateLimit, o.redisURL != "", o.tenants, o.docs, o.concurrency, n, rps, msf(p50), msf(p90), msf(p99), msf(maxLat), r.errors, r.wrong)
}

func codecName(o options) string {
	c := "proto"
	if o.json {
		c = "json"
	}
	if o.gzip {
		c += "+gzip responses"
	}
	return c
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", msf(d)) }

func round(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
