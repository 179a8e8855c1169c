package main

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// pgbenchScript is Quarters' own transaction for ListDocuments, as
// db.InTenant sends it: BEGIN, the tenant and timeout settings and the
// documents query pipelined in one round trip (pgbench's pipeline needs
// the extended protocol, -M prepared), then COMMIT. The tenant is picked
// by number from bench_tenants inside the set_config statement, which
// keeps the statement count and round trips the server's.
const pgbenchScript = `\set n random(1, :ntenants)
\startpipeline
BEGIN;
SELECT set_config('app.tenant_id', (SELECT id::text FROM bench_tenants WHERE n = :n), true), set_config('statement_timeout', '5000', true);
SELECT * FROM documents WHERE tenant_id = (SELECT app.current_tenant_id())
  AND (create_time, id) < ('9999-12-31T00:00:00Z'::timestamptz, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid)
  ORDER BY create_time DESC, id DESC LIMIT :limit;
\endpipeline
COMMIT;
`

// runPgbench runs the script with o.pool clients for warm-up plus the
// measured time and returns the transactions that finished in the
// measured window, from pgbench's per-transaction log.
func runPgbench(ctx context.Context, o compareOptions, appURL, tmp string) (*loadStats, error) {
	dir, err := os.MkdirTemp(tmp, "pgbench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "list.sql")
	if err := os.WriteFile(script, []byte(pgbenchScript), 0o644); err != nil {
		return nil, err
	}
	u, err := url.Parse(appURL)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	secs := int((o.warmup + o.duration + time.Second - 1) / time.Second)
	args := []string{"-n", "-M", "prepared", "-c", strconv.Itoa(o.pool), "-j", "1", "-T", strconv.Itoa(secs),
		"-f", script, "-D", fmt.Sprintf("ntenants=%d", o.tenants), "-D", fmt.Sprintf("limit=%d", o.pageSize+1),
		"-l", "--log-prefix", filepath.Join(dir, "log"),
		"-h", q.Get("host"), "-p", q.Get("port"), "-U", u.User.Username(), strings.TrimPrefix(u.Path, "/")}
	cmd := exec.CommandContext(ctx, o.pgbench, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "PGSSLMODE=disable"}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("pgbench: %w\n%s", err, out)
	}
	if !strings.Contains(string(out), "number of failed transactions: 0") {
		return nil, fmt.Errorf("pgbench reported failures:\n%s", out)
	}
	from := start.Add(o.warmup)
	logs, _ := filepath.Glob(filepath.Join(dir, "log.*"))
	st := &loadStats{}
	var first, last time.Time
	for _, name := range logs {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// client_id transaction_no time_us script_no epoch_s epoch_us
			fs := strings.Fields(sc.Text())
			if len(fs) < 6 {
				continue
			}
			lat, _ := strconv.ParseInt(fs[2], 10, 64)
			es, _ := strconv.ParseInt(fs[4], 10, 64)
			eus, _ := strconv.ParseInt(fs[5], 10, 64)
			end := time.Unix(es, eus*1000)
			if end.Before(from) {
				continue
			}
			if first.IsZero() || end.Before(first) {
				first = end
			}
			if end.After(last) {
				last = end
			}
			st.latencies = append(st.latencies, time.Duration(lat)*time.Microsecond)
		}
		f.Close()
	}
	if len(st.latencies) == 0 {
		return nil, fmt.Errorf("pgbench logged no transactions:\n%s", out)
	}
	slices.Sort(st.latencies)
	st.elapsed = last.Sub(from)
	return st, nil
}
