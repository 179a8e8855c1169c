package metrics

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// sum is the tracked tenants' calls plus other: every call is exported
// exactly once.
func sum(tenants map[string]float64, other float64) float64 {
	for _, n := range tenants {
		other += n
	}
	return other
}

// TestTopKBoundsLabels: however many tenants call, at most K are tracked,
// and the tracked plus other account for every call.
func TestTopKBoundsLabels(t *testing.T) {
	t.Parallel()
	top := NewTopK(5)
	calls := 0
	for round := range 20 {
		for i := range 1000 {
			top.Add(fmt.Sprintf("t%d-%d", round, i))
			calls++
		}
	}
	tenants, other := top.Snapshot()
	require.Len(t, tenants, 5)
	require.Equal(t, float64(calls), sum(tenants, other))
}

// TestTopKKeepsHeavyHitters: tenants with more than 1/K of the traffic
// (space-saving's guarantee) keep their own series among a stream of
// one-off tenants, with their exact counts.
func TestTopKKeepsHeavyHitters(t *testing.T) {
	t.Parallel()
	top := NewTopK(8)
	calls := 0
	for i := range 5000 {
		top.Add("heavy-a")
		top.Add("heavy-b")
		calls += 2
		if i%2 == 0 {
			top.Add("medium")
			calls++
		}
		top.Add(fmt.Sprintf("once-%d", i))
		calls++
	}
	tenants, other := top.Snapshot()
	require.Len(t, tenants, 8)
	require.Greater(t, 2500.0, float64(calls)/8, "medium is above 1/K of the traffic")
	require.Equal(t, float64(5000), tenants["heavy-a"])
	require.Equal(t, float64(5000), tenants["heavy-b"])
	require.Equal(t, float64(2500), tenants["medium"])
	require.Equal(t, float64(calls), sum(tenants, other))
}

// TestTopKOtherOnlyGrows: Prometheus counters must not go down; an
// evicted tenant's calls move into other, so other never shrinks.
func TestTopKOtherOnlyGrows(t *testing.T) {
	t.Parallel()
	top := NewTopK(2)
	last := 0.0
	for i := range 500 {
		top.Add(fmt.Sprintf("t%d", i%7))
		if i%3 == 0 {
			top.Add("steady")
		}
		_, other := top.Snapshot()
		require.GreaterOrEqual(t, other, last, "after call %d", i)
		last = other
	}
	require.Positive(t, last)
}
