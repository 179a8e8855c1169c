package input_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/internal/input"
)

func TestSingular(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"name: must be at least 1 characters":             "name: must be at least 1 character",
		"must be at most 1 bytes":                         "must be at most 1 byte",
		"must be at least 10 characters":                  "must be at least 10 characters",
		"must be at least 11 characters":                  "must be at least 11 characters",
		"a: at least 1 characters\n - b: at most 1 items": "a: at least 1 character\n - b: at most 1 item",
	} {
		require.Equal(t, want, input.Singular(in))
	}
}
