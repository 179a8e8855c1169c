package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
)

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
