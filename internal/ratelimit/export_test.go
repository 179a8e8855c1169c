package ratelimit

import "time"

// NewLocalWithClock returns a Local that reads the time from clock instead
// of the monotonic clock, so that a test decides when each call happens.
func NewLocalWithClock(clock func() time.Duration) *Local {
	l := NewLocal()
	l.clock = clock
	return l
}

// SetClock makes f read the time from clock (time since f was created)
// instead of the monotonic clock: its breaker then counts outcomes by the
// test's time, not by how fast a busy machine made the calls. Set it
// before the first call.
func (f *Failover) SetClock(clock func() time.Duration) { f.clock = clock }
