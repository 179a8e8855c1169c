package webhook_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/internal/webhook"
)

// TestBackoffSpansADay: the waits grow exponentially and the retries of
// one delivery span about a day (at-least-once over ~24 h).
func TestBackoffSpansADay(t *testing.T) {
	t.Parallel()
	var total time.Duration
	prev := time.Duration(0)
	for n := 1; n < webhook.MaxAttempts; n++ {
		d := webhook.Backoff(n)
		want := webhook.RetryBase << (n - 1)
		require.InDelta(t, float64(want), float64(d), float64(want)/10+1, "attempt %d", n)
		require.Greater(t, d, prev, "attempt %d waits longer than the one before", n)
		prev, total = d, total+d
	}
	require.Greater(t, total, 20*time.Hour)
	require.Less(t, total, 26*time.Hour)
}
