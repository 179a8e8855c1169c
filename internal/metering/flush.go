package metering

import (
	"context"
	"log/slog"
	"time"
)

// finalTimeout bounds the last flush at shutdown.
const finalTimeout = 10 * time.Second

// flushEvery calls fn every interval until ctx ends, then once more with a fresh
// context. Failures are logged as what: the first of a run, then one line
// when a flush succeeds again, with the count, so a database outage is two
// lines however long it lasts; fn keeps what it could not write.
func flushEvery(ctx context.Context, interval time.Duration, logger *slog.Logger, what string, fn func(context.Context) error) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	failed := 0
	for {
		select {
		case <-tick.C:
			// A flush cut short by shutdown is no failure: what it could
			// not write goes out with the final flush below.
			err := fn(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				if failed == 0 {
					logger.WarnContext(ctx, what+" flush failed; will retry, quietly until it succeeds", "error", err)
				}
				failed++
			case err == nil && failed > 0:
				logger.InfoContext(ctx, what+" flush succeeded again", "failed_attempts", failed)
				failed = 0
			}
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalTimeout)
			if err := fn(fctx); err != nil {
				logger.Error("final "+what+" flush failed", "error", err)
			}
			cancel()
			return
		}
	}
}
