package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// loadSpec is one HTTP scenario for the built-in load generator: the same
// POST to url with body, as a random tenant each time.
type loadSpec struct {
	url     string
	body    []byte
	header  http.Header // fixed headers (Content-Type, Accept-Encoding)
	tenants []tenantKey
	conns   int // concurrent connections, one request loop each
	warmup  time.Duration
	measure time.Duration
	// check validates a response body (raw, as sent on the wire).
	check func(body []byte) error
}

// loadStats is what one run measured.
type loadStats struct {
	latencies []time.Duration // sorted
	errors    int
	firstErr  string
	elapsed   time.Duration
	bytes     int64 // response body bytes on the wire, measured calls
}

func (s *loadStats) rps() float64 { return float64(len(s.latencies)) / s.elapsed.Seconds() }

// runLoad drives spec over HTTP/1.1 keep-alive connections, one request
// loop per connection (as wrk -c does), and measures after the warm-up.
// The transport never decompresses, so bytes are what crossed the wire.
func runLoad(ctx context.Context, spec loadSpec) (*loadStats, error) {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: spec.conns,
		MaxConnsPerHost:     spec.conns,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	type loop struct {
		lat      []time.Duration
		errors   int
		firstErr string
		bytes    int64
		lastEnd  time.Time
	}
	loops := make([]loop, spec.conns)
	start := time.Now()
	from, until := start.Add(spec.warmup), start.Add(spec.warmup+spec.measure)
	var wg sync.WaitGroup
	for i := range loops {
		l := &loops[i]
		l.lat = make([]time.Duration, 0, 4096)
		wg.Go(func() {
			buf := bytes.NewBuffer(make([]byte, 0, 64<<10))
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(until) {
					return
				}
				tk := spec.tenants[mrand.IntN(len(spec.tenants))]
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, spec.url, bytes.NewReader(spec.body))
				for k, v := range spec.header {
					req.Header[k] = v
				}
				req.Header.Set("Authorization", tk.bearer)
				buf.Reset()
				var err error
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(buf, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, buf.Bytes())
					}
					if err == nil && spec.check != nil {
						err = spec.check(buf.Bytes())
					}
				}
				t1 := time.Now()
				if ctx.Err() != nil {
					return
				}
				if t0.Before(from) {
					continue
				}
				l.lat = append(l.lat, t1.Sub(t0))
				l.lastEnd = t1
				l.bytes += int64(buf.Len())
				if err != nil {
					l.errors++
					if l.firstErr == "" {
						l.firstErr = err.Error()
					}
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &loadStats{}
	var last time.Time
	for i := range loops {
		l := &loops[i]
		s.latencies = append(s.latencies, l.lat...)
		s.errors += l.errors
		s.bytes += l.bytes
		if s.firstErr == "" {
			s.firstErr = l.firstErr
		}
		if l.lastEnd.After(last) {
			last = l.lastEnd
		}
	}
	if len(s.latencies) == 0 {
		return nil, fmt.Errorf("no calls completed against %s", spec.url)
	}
	slices.Sort(s.latencies)
	s.elapsed = last.Sub(from)
	return s, nil
}
