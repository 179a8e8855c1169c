package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/db/embedded"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
)

// compareOptions are the compare subcommand's flags.
type compareOptions struct {
	tenants, docs, pageSize int
	rounds                  int
	warmup, duration        time.Duration
	conns                   int
	pool                    int
	peer                    string // on, off
	pgbench                 string
	serverOutput            bool
}

// compareMain is `quarters-bench compare` (task bench:compare): the same
// ListDocuments page measured side by side, interleaved over rounds, on
// one machine: a Node/Express + pg peer (bench/peer), Quarters over
// Connect JSON, binary protobuf and gzip, and pgbench running Quarters'
// own transaction at the same pool size. It prints one table.
func compareMain(ctx context.Context, args []string, w io.Writer) (err error) {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	var o compareOptions
	fs.IntVar(&o.tenants, "tenants", 1000, "tenants (1-1000000), each with one project, one API key and -docs documents, seeded in SQL")
	fs.IntVar(&o.docs, "docs", 100, "documents per tenant")
	fs.IntVar(&o.pageSize, "page-size", 50, "ListDocuments page_size")
	fs.IntVar(&o.rounds, "rounds", 3, "interleaved rounds: every scenario runs once per round")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before each measured run, not counted")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each run")
	fs.IntVar(&o.conns, "connections", 64, "concurrent HTTP connections of the load generator (as wrk -c)")
	fs.IntVar(&o.pool, "pool", 0, "database pool size of Quarters, the peer and pgbench's clients (0: db.DefaultMaxConns)")
	fs.StringVar(&o.peer, "peer", "on", "on: run the Node peer (npm ci in bench/peer if needed); off: skip it")
	fs.StringVar(&o.pgbench, "pgbench", "/usr/lib/postgresql/15/bin/pgbench", "pgbench binary; empty skips pgbench")
	fs.BoolVar(&o.serverOutput, "server-output", false, "copy the Quarters server's stdout to stderr")
	fs.SetOutput(w)
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case o.tenants < 1 || o.tenants > 1000000, o.docs < 1, o.pageSize < 1 || o.pageSize > 100, o.rounds < 1,
		o.duration <= 0, o.warmup < 0, o.conns < 1, o.pool < 0, o.peer != "on" && o.peer != "off":
		return errors.New("compare: a flag is out of range (see -h)")
	}
	if o.pool == 0 {
		o.pool = int(db.DefaultMaxConns())
	}
	cleanupCtx := context.WithoutCancel(ctx)

	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	binDir, err := os.MkdirTemp("", "qcompare-bin")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	bin := filepath.Join(binDir, "quarters")
	if err := buildServer(ctx, bin); err != nil {
		return err
	}
	peerDir := filepath.Join(root, "bench", "peer")
	if o.peer == "on" {
		if err := ensurePeerModules(ctx, peerDir); err != nil {
			return err
		}
	}

	dataDir, err := os.MkdirTemp("", "qcompare")
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
			err = errors.Join(err, fmt.Errorf("stop postgres: %w", serr))
		}
	}()
	if err := emb.EnsureDatabase(ctx, "quarters"); err != nil {
		return err
	}
	appURL, ownerURL := emb.AppURL("quarters"), emb.OwnerURL("quarters")
	if err := db.Migrate(ctx, ownerURL); err != nil {
		return err
	}
	t0 := time.Now()
	tenants, err := seedFast(ctx, ownerURL, o.tenants, o.docs)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "seeded %d tenants x %d documents in SQL in %s\n", o.tenants, o.docs, round(time.Since(t0)))

	srv, err := startServer(ctx, bin, appURL, o.serverOutput, []string{fmt.Sprintf("QUARTERS_DB_MAX_CONNS=%d", o.pool)})
	if err != nil {
		return err
	}
	defer func() {
		if serr := srv.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	listURL := "/quarters.v1.DocumentService/ListDocuments"
	jsonBody := fmt.Appendf(nil, `{"pageSize":%d}`, o.pageSize)
	protoBody, _ := proto.Marshal(&quartersv1.ListDocumentsRequest{PageSize: int32(o.pageSize)})
	first, err := fetch(ctx, srv.baseURL+listURL, "application/json", tenants[0].bearer, jsonBody)
	if err != nil {
		return err
	}
	want := min(o.docs, o.pageSize)
	if n := bytes.Count(first, []byte(`"projectId":`)); n != want {
		return fmt.Errorf("quarters returned %d documents, want %d: %.300s", n, want, first)
	}
	// protojson's spacing between elements is fixed per binary: the
	// peer must write the same to send the same bytes.
	sep := ","
	if bytes.Contains(first, []byte(`", "projectId"`)) {
		sep = ", "
	}

	var pr *peer
	if o.peer == "on" {
		if pr, err = startPeer(ctx, peerDir, appURL, o.pool, sep); err != nil {
			return err
		}
		defer pr.stop()
		// Same bytes for the same tenants, or the comparison is void.
		for _, tk := range []tenantKey{tenants[0], tenants[len(tenants)/2], tenants[len(tenants)-1]} {
			q, err := fetch(ctx, srv.baseURL+listURL, "application/json", tk.bearer, jsonBody)
			if err != nil {
				return err
			}
			p, err := fetch(ctx, pr.baseURL+listURL, "application/json", tk.bearer, jsonBody)
			if err != nil {
				return err
			}
			if !bytes.Equal(q, p) {
				i := 0
				for i < min(len(q), len(p)) && q[i] == p[i] {
					i++
				}
				return fmt.Errorf("peer and Quarters answer tenant %s differently from byte %d:\nquarters: %.200s\npeer:     %.200s", tk.id, i, q[i:], p[i:])
			}
		}
		fmt.Fprintf(w, "peer on %s returns the same %d bytes as Quarters\n", pr.baseURL, len(first))
	}

	countDocs := func(b []byte) error {
		if n := bytes.Count(b, []byte(`"projectId":`)); n != want {
			return fmt.Errorf("%d documents, want %d", n, want)
		}
		return nil
	}
	hdr := func(kv ...string) map[string][]string {
		h := map[string][]string{}
		for i := 0; i < len(kv); i += 2 {
			h[kv[i]] = []string{kv[i+1]}
		}
		return h
	}
	type scenario struct {
		name string
		spec *loadSpec
		pid  func() int
	}
	base := loadSpec{tenants: tenants, conns: o.conns, warmup: o.warmup, measure: o.duration}
	mk := func(url string, body []byte, h map[string][]string, check func([]byte) error) *loadSpec {
		s := base
		s.url, s.body, s.header, s.check = url, body, h, check
		return &s
	}
	srvPID := func() int { return srv.cmd.Process.Pid }
	scenarios := []scenario{}
	if pr != nil {
		scenarios = append(scenarios, scenario{"Node/Express peer (JSON)", mk(pr.baseURL+listURL, jsonBody, hdr("Content-Type", "application/json"), countDocs), pr.pid})
	}
	scenarios = append(scenarios,
		scenario{"Quarters, Connect JSON", mk(srv.baseURL+listURL, jsonBody, hdr("Content-Type", "application/json"), countDocs), srvPID},
		scenario{"Quarters, Connect protobuf", mk(srv.baseURL+listURL, protoBody, hdr("Content-Type", "application/proto"), nil), srvPID},
		scenario{"Quarters, Connect JSON + gzip", mk(srv.baseURL+listURL, jsonBody, hdr("Content-Type", "application/json", "Accept-Encoding", "gzip"), nil), srvPID},
	)
	if o.pgbench != "" {
		scenarios = append(scenarios, scenario{name: fmt.Sprintf("pgbench, same transaction, %d clients", o.pool)})
	}

	type agg struct {
		rps       []float64
		latencies []time.Duration
		cores     []float64
		rss       int64
		bytes     float64
		errors    int
		firstErr  string
	}
	results := make([]agg, len(scenarios))
	fmt.Fprintf(w, "%d rounds x %d scenarios, %s warm-up + %s each, %d connections, pool %d, page_size %d\n",
		o.rounds, len(scenarios), o.warmup, o.duration, o.conns, o.pool, o.pageSize)
	for r := range o.rounds {
		for i, sc := range scenarios {
			a := &results[i]
			if sc.spec == nil {
				st, err := runPgbench(ctx, o, appURL, binDir)
				if err != nil {
					return err
				}
				a.rps = append(a.rps, st.rps())
				a.latencies = append(a.latencies, st.latencies...)
				fmt.Fprintf(w, "round %d  %-40s %8.0f tx/s\n", r+1, sc.name, st.rps())
				continue
			}
			ps := startSampler(sc.pid())
			st, err := runLoad(ctx, *sc.spec)
			cores, rss, ok := ps.finish()
			if err != nil {
				return err
			}
			if ok {
				a.cores = append(a.cores, cores)
				a.rss = max(a.rss, rss)
			}
			a.rps = append(a.rps, st.rps())
			a.latencies = append(a.latencies, st.latencies...)
			a.bytes = float64(st.bytes) / float64(len(st.latencies))
			a.errors += st.errors
			if a.firstErr == "" {
				a.firstErr = st.firstErr
			}
			fmt.Fprintf(w, "round %d  %-40s %8.0f req/s  p99 %6.2f ms  %.2f cores  errors %d\n", r+1, sc.name, st.rps(), msf(percentile(st.latencies, 99)), cores, st.errors)
		}
	}

	median := func(v []float64) float64 {
		s := slices.Clone(v)
		slices.Sort(s)
		if len(s)%2 == 1 {
			return s[len(s)/2]
		}
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	var peerRPS, pgRPS float64
	for i, sc := range scenarios {
		if strings.HasPrefix(sc.name, "Node") {
			peerRPS = median(results[i].rps)
		}
		if sc.spec == nil {
			pgRPS = median(results[i].rps)
		}
	}
	fmt.Fprintf(w, "\nListDocuments(page_size=%d), %d tenants x %d documents, %d connections, pool %d, %d rounds of %s (median req/s; latency over all rounds)\n\n",
		o.pageSize, o.tenants, o.docs, o.conns, o.pool, o.rounds, o.duration)
	fmt.Fprintf(w, "| scenario | req/s | p50 ms | p99 ms | server cores | RSS MB | bytes/call | vs peer | vs pgbench |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|\n")
	for i, sc := range scenarios {
		a := &results[i]
		slices.Sort(a.latencies)
		rps := median(a.rps)
		cell := func(ok bool, format string, v float64) string {
			if !ok {
				return "—"
			}
			return fmt.Sprintf(format, v)
		}
		fmt.Fprintf(w, "| %s | %.0f | %.2f | %.2f | %s | %s | %s | %s | %s |\n", sc.name, rps,
			msf(percentile(a.latencies, 50)), msf(percentile(a.latencies, 99)),
			cell(len(a.cores) > 0, "%.2f", meanOf(a.cores)), cell(a.rss > 0, "%.0f", float64(a.rss)/(1<<20)),
			cell(a.bytes > 0, "%.0f", a.bytes), cell(peerRPS > 0, "%.2f×", rps/peerRPS), cell(pgRPS > 0, "%.0f %%", 100*rps/pgRPS))
	}
	var failed []string
	for i, sc := range scenarios {
		if results[i].errors > 0 {
			failed = append(failed, fmt.Sprintf("%s: %d errors (%s)", sc.name, results[i].errors, results[i].firstErr))
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

func meanOf(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// moduleRoot is the directory of the quarters module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the quarters module: run from the repository")
		}
		dir = parent
	}
}
