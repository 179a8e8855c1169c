package metrics

import (
	"sync"

	"github.com/google/uuid"
)

// Other is the tenant label of every tenant outside the top K.
const Other = "other"

// TopK counts calls (and their database cost) per tenant with bounded memory and bounded label
// cardinality: it keeps the K tenants with the most traffic (the
// space-saving algorithm of Metwally, Agrawal and El Abbadi, 2005) and
// folds everyone else into Other.
//
// Two numbers are kept per tracked tenant: the space-saving estimate,
// which decides who is in the top K (a newcomer inherits the evicted
// tenant's count, so a steady heavy hitter cannot be pushed out by a
// stream of one-off tenants), and the calls actually seen since it
// entered, which is what is exported. Other is every call not exported
// under a tenant's own label, so the per-tenant series plus Other always
// sum to the total, and every exported figure only grows while its label
// exists: an evicted tenant's calls move into Other, and a tenant that
// comes back starts a new series from zero, which Prometheus reads as a
// counter reset.
type TopK struct {
	k     int
	mu    sync.Mutex
	slots map[uuid.UUID]*slot
	other Counts
}

// Counts are what is counted per tenant: calls, and what they cost the
// database.
type Counts struct {
	Calls     float64
	DBSeconds float64
	DBRows    float64
}

func (c *Counts) add(o Counts) {
	c.Calls += o.Calls
	c.DBSeconds += o.DBSeconds
	c.DBRows += o.DBRows
}

type slot struct {
	estimate uint64 // space-saving count of calls: seen + inherited
	seen     Counts
}

// NewTopK tracks up to k tenants (at least 1).
func NewTopK(k int) *TopK {
	k = max(k, 1)
	return &TopK{k: k, slots: make(map[uuid.UUID]*slot, k)}
}

// Add counts one call of tenant (c.Calls is taken as 1) and its cost.
func (t *TopK) Add(tenant uuid.UUID, c Counts) {
	c.Calls = 1
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.slots[tenant]; ok {
		s.estimate++
		s.seen.add(c)
		return
	}
	if len(t.slots) < t.k {
		t.slots[tenant] = &slot{estimate: 1, seen: c}
		return
	}
	// Replace the tenant with the smallest estimate; K is small (tens),
	// so a scan costs less than keeping a heap in step.
	var minKey uuid.UUID
	var minSlot *slot
	for key, s := range t.slots {
		if minSlot == nil || s.estimate < minSlot.estimate {
			minKey, minSlot = key, s
		}
	}
	delete(t.slots, minKey)
	t.other.add(minSlot.seen)
	t.slots[tenant] = &slot{estimate: minSlot.estimate + 1, seen: c}
}

// Snapshot returns each tracked tenant's counts and Other's.
func (t *TopK) Snapshot() (tenants map[uuid.UUID]Counts, other Counts) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tenants = make(map[uuid.UUID]Counts, len(t.slots))
	for key, s := range t.slots {
		tenants[key] = s.seen
	}
	return tenants, t.other
}
