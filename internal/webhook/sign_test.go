package webhook_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/internal/webhook"
)

// TestSignStandardVector checks Sign against the Standard Webhooks
// specification's published example (also the test vector of its
// reference libraries).
func TestSignStandardVector(t *testing.T) {
	t.Parallel()
	sig, err := webhook.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	require.NoError(t, err)
	require.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", sig)
}

func TestSecretsAndRotation(t *testing.T) {
	t.Parallel()
	a, b := webhook.NewSecret(), webhook.NewSecret()
	require.NotEqual(t, a, b)
	require.Regexp(t, `^whsec_[A-Za-z0-9+/]{43}=$`, a) // 32 bytes
	ts := time.Unix(1700000000, 0)
	body := []byte(`{"type":"project.created"}`)

	// During a rotation both secrets verify; a third does not.
	h, err := webhook.SignatureHeader([]string{b, a}, "evt_1", ts, body)
	require.NoError(t, err)
	require.Len(t, strings.Fields(h), 2)
	require.True(t, webhook.Verify(a, h, "evt_1", ts, body))
	require.True(t, webhook.Verify(b, h, "evt_1", ts, body))
	require.False(t, webhook.Verify(webhook.NewSecret(), h, "evt_1", ts, body))
	// Any change to id, timestamp or body breaks the signature.
	require.False(t, webhook.Verify(a, h, "evt_2", ts, body))
	require.False(t, webhook.Verify(a, h, "evt_1", ts.Add(time.Second), body))
	require.False(t, webhook.Verify(a, h, "evt_1", ts, append(body, ' ')))

	_, err = webhook.Sign("whsec_***", "x", ts, body)
	require.Error(t, err)
}
