// Package cost measures what each call costs the database: the time its
// statements were running (from sending the first to reading the last
// row) and the rows they returned or changed. A Meter rides in the call's
// context; the pool's Tracer adds every statement run under that context
// to it. The callers attribute the total to the call's tenant: package
// metering stores it per tenant and day (tenant_costs_daily), package
// metrics exports it on /metrics; both share one Meter per call. Nothing is allocated per statement: the request path is
// measured in allocations (router's BenchmarkListDocuments).
package cost

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Meter is one call's database cost so far. It is the call's context
// too, so carrying it costs one allocation.
type Meter struct {
	context.Context

	mu sync.Mutex
	// inFlight statements started under the meter and not ended; since
	// is when inFlight last went from 0 to 1. Time is counted while at
	// least one statement runs, so statements run concurrently for one
	// call count once, as wall time.
	inFlight int
	since    time.Time
	time     time.Duration
	rows     int64
}

// Totals returns the database time and rows measured so far.
func (m *Meter) Totals() (time.Duration, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.time, m.rows
}

func (m *Meter) start() {
	m.mu.Lock()
	if m.inFlight == 0 {
		m.since = time.Now()
	}
	m.inFlight++
	m.mu.Unlock()
}

func (m *Meter) end(rows int64) {
	m.mu.Lock()
	m.rows += rows
	if m.inFlight > 0 {
		m.inFlight--
		if m.inFlight == 0 {
			m.time += time.Since(m.since)
		}
	}
	m.mu.Unlock()
}

func (m *Meter) addRows(rows int64) {
	m.mu.Lock()
	m.rows += rows
	m.mu.Unlock()
}

type meterKey struct{}

// Value is the parent context's, except that it finds the meter.
func (m *Meter) Value(key any) any {
	if key == (meterKey{}) {
		return m
	}
	return m.Context.Value(key)
}

// WithMeter returns a new Meter, which is ctx with the meter in it.
func WithMeter(ctx context.Context) *Meter { return &Meter{Context: ctx} }

// FromContext returns the call's Meter, or nil outside a metered call.
func FromContext(ctx context.Context) *Meter { return meterOf(ctx) }

// Unmetered returns ctx without its Meter: statements run under it are
// no call's cost (the cost flush's own, run within a call).
func Unmetered(ctx context.Context) context.Context {
	if meterOf(ctx) == nil {
		return ctx
	}
	return unmetered{ctx}
}

type unmetered struct{ context.Context }

func (u unmetered) Value(key any) any {
	if key == (meterKey{}) {
		return nil
	}
	return u.Context.Value(key)
}

func meterOf(ctx context.Context) *Meter {
	m, _ := ctx.Value(meterKey{}).(*Meter)
	return m
}

// Tracer is the pgx tracer that feeds Meters: set it on the pool
// (alone, or with others through pgx's multitracer). Statements whose
// context carries no Meter cost one context lookup.
type Tracer struct{}

func (Tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	if m := meterOf(ctx); m != nil {
		m.start()
	}
	return ctx
}

func (Tracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	if m := meterOf(ctx); m != nil {
		m.end(data.CommandTag.RowsAffected())
	}
}

// A batch (set_config and the query, in one round trip) is timed as a
// whole; each of its statements adds its rows.

func (Tracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	if m := meterOf(ctx); m != nil {
		m.start()
	}
	return ctx
}

func (Tracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	if m := meterOf(ctx); m != nil {
		m.addRows(data.CommandTag.RowsAffected())
	}
}

func (Tracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchEndData) {
	if m := meterOf(ctx); m != nil {
		m.end(0)
	}
}
