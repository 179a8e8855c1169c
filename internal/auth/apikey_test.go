package auth_test

import (
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

func TestAPIKeyRoundTrip(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		secret, hash, prefix := auth.NewAPIKey()
		require.Regexp(t, `^qk_[a-z2-7]{39}$`, secret)
		require.True(t, strings.HasPrefix(secret, prefix))
		require.Equal(t, sha256.Sum256([]byte(secret)), hash)
		got, err := auth.ParseAPIKey(secret)
		require.NoError(t, err)
		require.Equal(t, hash, got)
		require.False(t, seen[secret])
		seen[secret] = true
	}
}

// TestAPIKeyRejectsWithoutLookup: typos, truncations and random strings of
// the right shape all fail the checksum, before any database is asked.
func TestAPIKeyRejectsWithoutLookup(t *testing.T) {
	t.Parallel()
	secret, _, _ := auth.NewAPIKey()
	bad := []string{
		"",
		"qk_",
		secret[:len(secret)-1],
		secret + "a",
		strings.ToUpper(secret),
		"pk_" + secret[3:],
		"qk_" + strings.Repeat("a", 39),
	}
	// Every single-character substitution is caught by CRC-32.
	for i := 3; i < len(secret); i++ {
		b := []byte(secret)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		bad = append(bad, string(b))
	}
	for _, k := range bad {
		_, err := auth.ParseAPIKey(k)
		require.ErrorIs(t, err, auth.ErrMalformedKey, "accepted %q", k)
	}
}

func TestRoleNames(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"member", "admin", "owner"} {
		require.Equal(t, name, tenancy.ParseRole(name).String())
	}
	require.Zero(t, tenancy.ParseRole("root"))
}
