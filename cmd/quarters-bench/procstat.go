package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux this runs on.
const clockTicks = 100

// cpuSeconds is a process's user+system CPU time so far, from
// /proc/PID/stat (fields 14 and 15, after the parenthesised name).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	s, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad times", pid)
	}
	return (u + s) / clockTicks, nil
}

// rssBytes is a process's resident set size now (VmRSS).
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// procSampler measures a process over a run: CPU cores used (CPU time
// over wall time) and the largest RSS seen, sampled every 100 ms.
type procSampler struct {
	pid     int
	cpu0    float64
	t0      time.Time
	stop    chan struct{}
	done    sync.WaitGroup
	maxRSS  int64
	sampled bool
}

func startSampler(pid int) *procSampler {
	p := &procSampler{pid: pid, t0: time.Now(), stop: make(chan struct{})}
	if pid <= 0 {
		return p
	}
	p.cpu0, _ = cpuSeconds(pid)
	p.sampled = true
	p.done.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if r, err := rssBytes(pid); err == nil && r > p.maxRSS {
				p.maxRSS = r
			}
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	})
	return p
}

// finish returns cores used and peak RSS; ok is false for no process.
func (p *procSampler) finish() (cores float64, rss int64, ok bool) {
	close(p.stop)
	p.done.Wait()
	if !p.sampled {
		return 0, 0, false
	}
	cpu1, err := cpuSeconds(p.pid)
	if err != nil {
		return 0, 0, false
	}
	return (cpu1 - p.cpu0) / time.Since(p.t0).Seconds(), p.maxRSS, true
}
