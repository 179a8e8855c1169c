package metrics

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// id is a stable tenant id per name.
func id(name string) uuid.UUID { return uuid.NewSHA1(uuid.NameSpaceOID, []byte(name)) }

// sum is the tracked tenants' calls plus other: every call is exported
// exactly once.
func sum(tenants map[uuid.UUID]Counts, other Counts) float64 {
	total := other.Calls
	for _, n := range tenants {
		total += n.Calls
	}
	return total
}

// TestTopKBoundsLabels: however many tenants call, at most K are tracked,
// and the tracked plus other account for every call.
func TestTopKBoundsLabels(t *testing.T) {
	t.Parallel()
	top := NewTopK(5)
	calls := 0
	for round := range 20 {
		for i := range 1000 {
			top.Add(id(fmt.Sprintf("t%d-%d", round, i)), Counts{})
			calls++
		}
	}
	tenants, other := top.Snapshot()
	require.Len(t, tenants, 5)
	require.Equal(t, float64(calls), sum(tenants, other))
}

// TestTopKMovesCostWithTenant: an evicted tenant's database cost moves
// into other with its calls.
func TestTopKMovesCostWithTenant(t *testing.T) {
	t.Parallel()
	top := NewTopK(1)
	top.Add(id("a"), Counts{DBSeconds: 0.5, DBRows: 3})
	top.Add(id("b"), Counts{DBSeconds: 0.25, DBRows: 1})
	tenants, other := top.Snapshot()
	require.Equal(t, map[uuid.UUID]Counts{id("b"): {Calls: 1, DBSeconds: 0.25, DBRows: 1}}, tenants)
	require.Equal(t, Counts{Calls: 1, DBSeconds: 0.5, DBRows: 3}, other)
}

// TestTopKKeepsHeavyHitters: tenants with more than 1/K of the traffic
// (space-saving's guarantee) keep their own series among a stream of
// one-off tenants, with their exact counts.
func TestTopKKeepsHeavyHitters(t *testing.T) {
	t.Parallel()
	top := NewTopK(8)
	calls := 0
	for i := range 5000 {
		top.Add(id("heavy-a"), Counts{})
		top.Add(id("heavy-b"), Counts{})
		calls += 2
		if i%2 == 0 {
			top.Add(id("medium"), Counts{})
			calls++
		}
		top.Add(id(fmt.Sprintf("once-%d", i)), Counts{})
		calls++
	}
	tenants, other := top.Snapshot()
	require.Len(t, tenants, 8)
	require.Greater(t, 2500.0, float64(calls)/8, "medium is above 1/K of the traffic")
	require.Equal(t, float64(5000), tenants[id("heavy-a")].Calls)
	require.Equal(t, float64(5000), tenants[id("heavy-b")].Calls)
	require.Equal(t, float64(2500), tenants[id("medium")].Calls)
	require.Equal(t, float64(calls), sum(tenants, other))
}

// TestTopKOtherOnlyGrows: Prometheus counters must not go down; an
// evicted tenant's calls move into other, so other never shrinks.
func TestTopKOtherOnlyGrows(t *testing.T) {
	t.Parallel()
	top := NewTopK(2)
	last := 0.0
	for i := range 500 {
		top.Add(id(fmt.Sprintf("t%d", i%7)), Counts{})
		if i%3 == 0 {
			top.Add(id("steady"), Counts{})
		}
		_, other := top.Snapshot()
		require.GreaterOrEqual(t, other.Calls, last, "after call %d", i)
		last = other.Calls
	}
	require.Positive(t, last)
}
