package quarters

import (
	"net/http"
	"testing"
	"time"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	r := newRetryInterceptor(RetryPolicy{MaxAttempts: 10, InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	for _, c := range []struct {
		jitter float64
		want   []time.Duration // after attempts 1, 2, …
	}{
		{0, []time.Duration{50, 100, 200, 400, 500, 500}},
		{0.999999, []time.Duration{100, 200, 400, 800, 1000, 1000}},
	} {
		r.jitter = func() float64 { return c.jitter }
		for i, want := range c.want {
			require.InDelta(t, want*time.Millisecond, r.backoff(i+1), float64(time.Millisecond), "attempt %d", i+1)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"1":   time.Second,
		" 3 ": 3 * time.Second,
		"0":   0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		got, ok := parseRetryAfter(v, now)
		require.True(t, ok, v)
		require.Equal(t, want, got, v)
	}
	for _, v := range []string{"", "-1", "soon", "1.5", "99999999999"} {
		_, ok := parseRetryAfter(v, now)
		require.False(t, ok, v)
	}
}

func TestFieldPath(t *testing.T) {
	t.Parallel()
	p := &validate.FieldPath{Elements: []*validate.FieldPathElement{
		{FieldName: proto.String("overrides")},
		{FieldName: proto.String("features"), Subscript: &validate.FieldPathElement_StringKey{StringKey: "X y"}},
		{FieldName: proto.String("items"), Subscript: &validate.FieldPathElement_Index{Index: 2}},
		{FieldName: proto.String("ids"), Subscript: &validate.FieldPathElement_IntKey{IntKey: -3}},
	}}
	require.Equal(t, `overrides.features["X y"].items[2].ids[-3]`, fieldPath(p))
	require.Empty(t, fieldPath(nil))
}
