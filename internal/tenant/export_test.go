package tenant

import "github.com/google/uuid"

// Waiters returns how many callers wait on the tenant's load in flight (0
// when none is): tests use it to know every caller has joined a load.
func (c *Cache) Waiters(id uuid.UUID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l, ok := c.loads[id]; ok {
		return l.waiters
	}
	return 0
}
