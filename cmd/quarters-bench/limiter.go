package main

// The limiter subcommand measures how exactly the Redis rate limiter
// enforces one tenant's limit under load, the figures README quotes:
//
//	go run ./cmd/quarters-bench limiter -clients=200 -duration=30s
//
// It runs three parts, each against a real redis-server (a private one
// on a free loopback port unless -redis-url is given):
//
//  1. rtt: the round-trip distribution of one limiter decision, with
//     -clients goroutines calling Redis at once through a client set up
//     as the server sets it up (what Failover's timeout is sized from);
//  2. in-process: -clients goroutines hammering one key through 1 and 2
//     Failover limiters (each "replica" with its own Redis client and
//     local fallback), counting admissions against the GCRA allowance
//     (rate × duration + burst), fallback answers and breaker openings;
//  3. servers: the same through 1 and 2 real server processes sharing a
//     database and Redis, -clients HTTP clients calling ListProjects as
//     one tenant, counting 200s against the allowance, and breaker
//     openings from the servers' logs. (-servers=false skips it.)
//
// The figures depend on the machine: run it on a quiet one.

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/db/embedded"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/ratelimit"
)

type limiterOptions struct {
	redisURL    string
	clients     int
	duration    time.Duration
	rttDuration time.Duration
	rate, burst int
	servers     bool
	inProcess   bool
	timeout     time.Duration
}

func limiterMain(ctx context.Context, args []string) error {
	var o limiterOptions
	fs := flag.NewFlagSet("limiter", flag.ContinueOnError)
	fs.StringVar(&o.redisURL, "redis-url", "", "Redis to measure against (default: a private redis-server on a free loopback port)")
	fs.IntVar(&o.clients, "clients", 200, "concurrent clients, spread evenly over the replicas")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long each accuracy run drives load")
	fs.DurationVar(&o.rttDuration, "rtt-duration", 10*time.Second, "how long the round-trip measurement runs")
	fs.IntVar(&o.rate, "rate", 100, "the tenant's limit, requests per minute (the free plan's 100)")
	fs.IntVar(&o.burst, "burst", 20, "the tenant's burst (the free plan's 20)")
	fs.BoolVar(&o.servers, "servers", true, "also measure through real server processes (builds the server, starts PostgreSQL)")
	fs.BoolVar(&o.inProcess, "in-process", true, "measure Failover limiters in this process")
	fs.DurationVar(&o.timeout, "timeout", ratelimit.DefaultFailoverTimeout, "the limiter's Redis timeout (QUARTERS_RATE_LIMIT_TIMEOUT)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.clients < 1 || o.duration <= 0 || o.rttDuration <= 0 || o.rate < 1 || o.burst < 1 {
		return errors.New("limiter: -clients, -duration, -rtt-duration, -rate and -burst must be positive")
	}
	redisURL := o.redisURL
	if redisURL == "" {
		url, stop, err := startRedis(ctx)
		if err != nil {
			return err
		}
		defer stop()
		redisURL = url
	}
	fmt.Printf("redis: %s\n", redisURL)
	limit := ratelimit.PerMinute(o.rate, o.burst)

	if err := measureRTT(ctx, redisURL, o.clients, o.rttDuration); err != nil {
		return err
	}
	if o.inProcess {
		for _, replicas := range []int{1, 2} {
			if err := accuracyInProcess(ctx, redisURL, replicas, o.clients, o.duration, limit, o.timeout); err != nil {
				return err
			}
		}
	}
	if o.servers {
		if err := accuracyServers(ctx, redisURL, o.clients, o.duration, limit, o.timeout); err != nil {
			return err
		}
	}
	return nil
}

// serverRedisOptions parses url and sets it up as the server does
// (main.go): short dial and read timeouts, context deadlines honoured.
func serverRedisOptions(url string, timeout time.Duration) (*redis.Options, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	opts.DialTimeout = 500 * time.Millisecond
	t := max(200*time.Millisecond, timeout)
	opts.ReadTimeout, opts.WriteTimeout = t, t
	opts.ContextTimeoutEnabled = true
	return opts, nil
}

// startRedis runs a private redis-server on a free loopback port, without
// persistence.
func startRedis(ctx context.Context) (string, func(), error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, fmt.Errorf("redis-server is not installed (apt-get install redis-server), or pass -redis-url: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	dir, err := os.MkdirTemp("", "qbench-redis")
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		os.RemoveAll(dir)
	}
	url := "redis://127.0.0.1:" + port + "/0"
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c.Ping(ctx).Err() == nil {
			return url, stop, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return "", nil, errors.New("redis-server did not answer within 10s")
		}
	}
}

// measureRTT prints the distribution of one decision's duration with
// clients callers at once, straight on Redis (no failover, no timeout
// beyond the client's): what a timeout must sit above.
func measureRTT(ctx context.Context, url string, clients int, d time.Duration) error {
	opts, err := serverRedisOptions(url, 0)
	if err != nil {
		return err
	}
	c := redis.NewClient(opts)
	defer c.Close()
	lim := ratelimit.NewRedis(c)
	// A key with room for everything: each call is a full script run
	// that writes, as an admitted call is.
	limit := ratelimit.PerMinute(1_000_000_000, 1_000_000)
	var (
		mu   sync.Mutex
		all  []time.Duration
		errs atomic.Int64
		wg   sync.WaitGroup
	)
	end := time.Now().Add(d)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			key := "rtt:" + strconv.Itoa(i%4) // a few hot keys, as a few busy tenants
			for time.Now().Before(end) && ctx.Err() == nil {
				t0 := time.Now()
				if _, err := lim.Allow(ctx, key, limit, 1); err != nil {
					errs.Add(1)
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(all)
	if len(all) == 0 {
		return errors.New("rtt: no calls completed")
	}
	fmt.Printf("\nrtt: %d decisions by %d concurrent callers in %s (%.0f/s), %d errors (pool size %d)\n",
		len(all), clients, d, float64(len(all))/d.Seconds(), errs.Load(), cmp.Or(opts.PoolSize, 10*runtime.GOMAXPROCS(0)))
	fmt.Printf("rtt: p50 %s  p90 %s  p99 %s  p99.9 %s  p99.99 %s  max %s\n",
		ms(percentile(all, 50)), ms(percentile(all, 90)), ms(percentile(all, 99)),
		ms(percentile(all, 99.9)), ms(percentile(all, 99.99)), ms(all[len(all)-1]))
	return nil
}

// allowance is what GCRA admits in d from a full bucket.
func allowance(l ratelimit.Limit, d time.Duration) float64 {
	return float64(l.Burst) + float64(l.Rate)*d.Seconds()/l.Period.Seconds()
}

func report(what string, admitted int64, l ratelimit.Limit, d time.Duration, extra string) {
	want := allowance(l, d)
	fmt.Printf("%s: admitted %d, GCRA allowance %.1f (%d + %d/%s × %s): %+.1f%%%s\n",
		what, admitted, want, l.Burst, l.Rate, periodName(l.Period), d, 100*(float64(admitted)-want)/want, extra)
}

func periodName(d time.Duration) string {
	if d == time.Minute {
		return "min"
	}
	return d.String()
}

// accuracyInProcess hammers one key through replicas Failover limiters.
func accuracyInProcess(ctx context.Context, url string, replicas, clients int, d time.Duration, l ratelimit.Limit, timeout time.Duration) error {
	opts, err := serverRedisOptions(url, timeout)
	if err != nil {
		return err
	}
	key := "accuracy:" + randomHex(4)
	fs := make([]*ratelimit.Failover, replicas)
	for i := range fs {
		c := redis.NewClient(opts)
		defer c.Close()
		fs[i] = ratelimit.NewFailover(ratelimit.NewRedis(c), ratelimit.NewLocal(), &ratelimit.FailoverOpts{Timeout: timeout})
	}
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := fs[i%replicas]
			for time.Now().Before(end) && ctx.Err() == nil {
				res, err := f.Allow(ctx, key, l, 1)
				switch {
				case err != nil:
					return
				case res.Allowed:
					admitted.Add(1)
				default:
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	var fallbacks, openings uint64
	for _, f := range fs {
		fallbacks += f.Fallbacks()
		openings += f.Openings()
	}
	report(fmt.Sprintf("\nin-process, %d replica(s), %d clients", replicas, clients), admitted.Load(), l, d,
		fmt.Sprintf("; %d refused, %d fallback answers, %d breaker openings", refused.Load(), fallbacks, openings))
	return nil
}

// accuracyServers drives ListProjects as one tenant through 1 and 2 real
// server processes.
func accuracyServers(ctx context.Context, redisURL string, clients int, d time.Duration, l ratelimit.Limit, timeout time.Duration) (err error) {
	cleanupCtx := context.WithoutCancel(ctx)
	binDir, err := os.MkdirTemp("", "qbench-bin")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	bin := filepath.Join(binDir, "quarters")
	if err := buildServer(ctx, bin); err != nil {
		return err
	}
	dataDir, err := os.MkdirTemp("", "qbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	emb, err := embedded.Start(ctx, embedded.Opts{DataDir: dataDir, Ephemeral: true})
	if err != nil {
		return err
	}
	defer func() {
		if serr := emb.Stop(cleanupCtx); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	if err := emb.EnsureDatabase(ctx, "quarters"); err != nil {
		return err
	}
	if err := db.Migrate(ctx, emb.OwnerURL("quarters")); err != nil {
		return err
	}
	for _, replicas := range []int{1, 2} {
		if err := accuracyThrough(ctx, bin, emb, redisURL, replicas, clients, d, l, timeout); err != nil {
			return err
		}
	}
	return nil
}

// logCounter counts the server's log lines that contain needle, passing
// everything through to w.
type logCounter struct {
	w      io.Writer
	needle string
	n      atomic.Int64
	mu     sync.Mutex
	rest   []byte
}

func (c *logCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.rest = append(c.rest, p...)
	for {
		i := strings.IndexByte(string(c.rest), '\n')
		if i < 0 {
			break
		}
		if strings.Contains(string(c.rest[:i]), c.needle) {
			c.n.Add(1)
		}
		c.rest = c.rest[i+1:]
	}
	c.mu.Unlock()
	return c.w.Write(p)
}

func accuracyThrough(ctx context.Context, bin string, emb *embedded.Cluster, redisURL string, replicas, clients int, d time.Duration, l ratelimit.Limit, timeout time.Duration) (err error) {
	openings := &logCounter{w: os.Stderr, needle: ratelimit.LogBreakerOpen}
	env := []string{"REDIS_URL=" + redisURL, "QUARTERS_SIGNUP_RATE=1000000", "QUARTERS_MAX_CONNS_PER_IP=0",
		"QUARTERS_RATE_LIMIT_TIMEOUT=" + timeout.String()}
	var servers []*server
	defer func() {
		for _, s := range servers {
			err = errors.Join(err, s.stop())
		}
	}()
	for range replicas {
		s, err := startServerLogged(ctx, bin, emb.AppURL("quarters"), env, openings)
		if err != nil {
			return err
		}
		servers = append(servers, s)
	}
	hc := &http.Client{Transport: &http.Transport{
		Proxy: nil, MaxIdleConns: clients, MaxIdleConnsPerHost: clients, IdleConnTimeout: 90 * time.Second,
	}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	slug := "limit-" + randomHex(4)
	signup, err := quartersv1connect.NewTenantServiceClient(hc, servers[0].baseURL).CreateTenant(ctx, connect.NewRequest(&quartersv1.CreateTenantRequest{
		Slug: slug, Name: "Limit " + slug, OwnerEmail: "owner@" + slug + ".example",
	}))
	if err != nil {
		return fmt.Errorf("sign up: %w", err)
	}
	if l != ratelimit.PerMinute(100, 20) {
		if err := overrideLimit(ctx, emb.OwnerURL("quarters"), signup.Msg.GetTenant().GetId(), l); err != nil {
			return err
		}
	}
	bearer := "Bearer " + signup.Msg.GetApiKeySecret()
	projects := make([]quartersv1connect.ProjectServiceClient, replicas)
	for i, s := range servers {
		projects[i] = quartersv1connect.NewProjectServiceClient(hc, s.baseURL)
	}

	var admitted, refused, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := projects[i%replicas]
			for time.Now().Before(end) && ctx.Err() == nil {
				r := connect.NewRequest(&quartersv1.ListProjectsRequest{})
				r.Header().Set("Authorization", bearer)
				_, err := p.ListProjects(ctx, r)
				switch {
				case err == nil:
					admitted.Add(1)
				case connect.CodeOf(err) == connect.CodeResourceExhausted:
					refused.Add(1)
				default:
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	report(fmt.Sprintf("\nservers, %d replica(s), %d clients", replicas, clients), admitted.Load(), l, d,
		fmt.Sprintf("; %d refused (%.0f calls/s), %d failed, %d breaker openings", refused.Load(),
			float64(admitted.Load()+refused.Load())/d.Seconds(), failed.Load(), openings.n.Load()))
	return nil
}

// startServerLogged is startServer with the server's stderr (its log, at
// warn and above) going through w.
func startServerLogged(ctx context.Context, bin, appURL string, env []string, w io.Writer) (*server, error) {
	s, err := startServerWith(ctx, bin, appURL, false, env, w)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func overrideLimit(ctx context.Context, ownerURL, tenantID string, l ratelimit.Limit) error {
	conn, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, `insert into tenant_overrides (tenant_id, requests_per_minute, burst) values ($1, $2, $3)`,
		tenantID, l.Rate, l.Burst)
	return err
}
