package redistest_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/internal/redistest"
)

func TestServerStopStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.New(t)
	c := srv.Client()

	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	got, err := c.Get(ctx, "k").Result()
	require.NoError(t, err)
	require.Equal(t, "v", got)

	srv.Stop()
	require.Error(t, c.Ping(ctx).Err(), "a stopped server must refuse connections")

	srv.Start()
	require.Eventually(t, func() bool { return c.Ping(ctx).Err() == nil }, 5*time.Second, 10*time.Millisecond,
		"the client must reconnect to the restarted server")
	require.Equal(t, int64(0), c.Exists(ctx, "k").Val(), "a restarted server starts empty (no persistence)")
}

func TestServersArePrivate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := redistest.New(t).Client(), redistest.New(t).Client()
	require.NoError(t, a.Set(ctx, "shared", "a", 0).Err())
	require.Equal(t, int64(0), b.Exists(ctx, "shared").Val())
}

func TestServerPauseResume(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	opts := srv.Options()
	opts.MaxRetries = -1
	opts.ReadTimeout = 50 * time.Millisecond
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	srv.Pause()
	require.Error(t, c.Ping(context.Background()).Err(), "a paused server must not answer")
	srv.Resume()
	require.Eventually(t, func() bool { return c.Ping(context.Background()).Err() == nil }, 5*time.Second, 10*time.Millisecond)
}
