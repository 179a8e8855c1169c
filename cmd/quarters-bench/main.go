// Command quarters-bench is Quarters' load test: it seeds many tenants with
// documents and drives DocumentService.ListDocuments against a real server
// process over the Connect protocol, then prints throughput and latency.
//
//	go run ./cmd/quarters-bench -tenants=1000 -docs=100 -concurrency=32 -duration=20s
//
// (The limiter subcommand, in limiter.go, measures the rate limiter's
// accuracy against Redis instead: go run ./cmd/quarters-bench limiter.
// The compare subcommand, compare.go, measures Quarters side by side with a
// Node/Express peer and pgbench: task bench:compare.)
//
// Files: main.go (flags, the load test's run), server.go (building and
// starting the server), seed.go (seeding through the API), load.go (the
// load test's loops and report); compare.go, seedfast.go, loadgen.go,
// peer.go, pgbench.go and procstat.go for compare; limiter.go.
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
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"connectrpc.com/connect"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/db/embedded"
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
		err := compareMain(ctx, os.Args[2:], os.Stdout)
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
		emb, err := embedded.Start(ctx, embedded.Opts{DataDir: dataDir, Ephemeral: true})
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
