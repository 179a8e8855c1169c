// Package cost measures what each call costs the database: the time its
// statements took (from sending to the last row read) and the rows they
// returned or changed. A Meter rides in the call's context; the pool's
// Tracer adds every statement run under that context to it. The caller
// (package metrics) attributes the total to the call's tenant.
package cost

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Meter is one call's database cost so far.
type Meter struct {
	mu   sync.Mutex
	time time.Duration
	rows int64
}

// Totals returns the database time and rows measured so far.
func (m *Meter) Totals() (time.Duration, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.time, m.rows
}

func (m *Meter) add(d time.Duration, rows int64) {
	m.mu.Lock()
	m.time += d
	m.rows += rows
	m.mu.Unlock()
}

type meterKey struct{}

// WithMeter returns ctx carrying a new Meter, and the Meter.
func WithMeter(ctx context.Context) (context.Context, *Meter) {
	m := &Meter{}
	return context.WithValue(ctx, meterKey{}, m), m
}

func meterOf(ctx context.Context) *Meter {
	m, _ := ctx.Value(meterKey{}).(*Meter)
	return m
}

// Tracer is the pgx tracer that feeds Meters: set it on the pool
// (alone, or with others through pgx's multitracer). Statements whose
// context carries no Meter cost one context lookup.
type Tracer struct{}

type startKey struct{}

func (Tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	if meterOf(ctx) == nil {
		return ctx
	}
	return context.WithValue(ctx, startKey{}, time.Now())
}

func (Tracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	if m := meterOf(ctx); m != nil {
		start, _ := ctx.Value(startKey{}).(time.Time)
		m.add(time.Since(start), data.CommandTag.RowsAffected())
	}
}

// A batch (set_config and the query, in one round trip) is timed as a
// whole; each of its statements adds its rows.

func (Tracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	if meterOf(ctx) == nil {
		return ctx
	}
	return context.WithValue(ctx, startKey{}, time.Now())
}

func (Tracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	if m := meterOf(ctx); m != nil {
		m.add(0, data.CommandTag.RowsAffected())
	}
}

func (Tracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchEndData) {
	if m := meterOf(ctx); m != nil {
		start, _ := ctx.Value(startKey{}).(time.Time)
		m.add(time.Since(start), 0)
	}
}
