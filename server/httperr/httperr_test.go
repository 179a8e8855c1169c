package httperr_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/server/httperr"
)

// TestUnescape: HTML escapes in strings become their characters; an
// escaped backslash before "u003c", other escapes and text outside strings
// stay as they were, and the document still decodes to the same value.
func TestUnescape(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`{"message":"Bearer \u003ckey\u003e \u0026 more"}`: `{"message":"Bearer <key> & more"}`,
		`{"m":"\\u003c is literal"}`:                       `{"m":"\\u003c is literal"}`,
		`{"m":"quote \" then \u003C"}`:                     `{"m":"quote \" then <"}`,
		`{"m":"\n\u00e9"}`:                                 `{"m":"\n\u00e9"}`,
		`{"a":1}`:                                          `{"a":1}`,
	} {
		got := string(httperr.Unescape([]byte(in)))
		require.Equal(t, want, got, in)
		var a, b any
		require.NoError(t, json.Unmarshal([]byte(in), &a))
		require.NoError(t, json.Unmarshal([]byte(got), &b))
		require.Equal(t, a, b, in)
	}
}
