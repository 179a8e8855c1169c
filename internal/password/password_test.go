package password_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/internal/password"
)

var fast = password.Params{Memory: 64, Time: 1, Threads: 1}

func TestHashCheck(t *testing.T) {
	t.Parallel()
	h, err := password.Hash("correct horse battery", fast)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$"), h)
	require.NoError(t, password.Check("correct horse battery", h))
	require.ErrorIs(t, password.Check("correct horse batterz", h), password.ErrMismatch)
	require.ErrorIs(t, password.Check("", h), password.ErrMismatch)

	h2, err := password.Hash("correct horse battery", fast)
	require.NoError(t, err)
	require.NotEqual(t, h, h2, "salt must differ")
}

func TestCheckRejectsMalformedHashes(t *testing.T) {
	t.Parallel()
	for _, h := range []string{
		"", "plain", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=18$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=64,t=1,p=1$!!$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5",
	} {
		err := password.Check("x", h)
		require.Error(t, err, h)
		require.NotErrorIs(t, err, password.ErrMismatch, h)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	require.ErrorIs(t, password.Validate("short"), password.ErrTooShort)
	require.ErrorIs(t, password.Validate(strings.Repeat("é", 9)), password.ErrTooShort)
	require.NoError(t, password.Validate(strings.Repeat("é", 10)))
	require.NoError(t, password.Validate(strings.Repeat("a", 128)))
	require.ErrorIs(t, password.Validate(strings.Repeat("a", 129)), password.ErrTooLong)
}

func TestCheckMissing(t *testing.T) {
	t.Parallel()
	require.ErrorIs(t, password.CheckMissing("anything", fast), password.ErrMismatch)
}

// BenchmarkHash is the cost of one sign-in's password check at the
// production parameters.
func BenchmarkHash(b *testing.B) {
	h, err := password.Hash("correct horse battery", password.Default)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		_ = password.Check("correct horse battery", h)
	}
}
