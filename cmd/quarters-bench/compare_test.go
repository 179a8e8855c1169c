package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCompareSmoke runs the whole compare harness in a tiny
// configuration (3 tenants, one round of half a second per scenario): it
// builds and starts the server, installs and starts the Node peer (npm ci
// from bench/peer's lockfile, when node and npm are installed), checks
// both return the same bytes, runs pgbench when it is installed, and
// prints the table. It measures nothing worth reading; it keeps the
// harness working. Skipped with -short.
func TestCompareSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server and starts PostgreSQL and Node")
	}
	args := []string{"-tenants=3", "-docs=60", "-rounds=1", "-warmup=100ms", "-duration=500ms", "-connections=2", "-pool=2"}
	_, nodeErr := exec.LookPath("node")
	_, npmErr := exec.LookPath("npm")
	withPeer := nodeErr == nil && npmErr == nil
	if !withPeer {
		args = append(args, "-peer=off")
	}
	const pgbench = "/usr/lib/postgresql/15/bin/pgbench"
	_, pgErr := os.Stat(pgbench)
	if pgErr != nil {
		args = append(args, "-pgbench=")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := compareMain(ctx, args, &out)
	require.NoError(t, err, "%s", out.String())
	text := out.String()
	for _, row := range []string{"| Quarters, Connect JSON |", "| Quarters, Connect protobuf |", "| Quarters, Connect JSON + gzip |"} {
		require.Contains(t, text, row)
	}
	if withPeer {
		require.Contains(t, text, "returns the same")
		require.Contains(t, text, "| Node/Express peer (JSON) |")
	}
	if pgErr == nil {
		require.Contains(t, text, "| pgbench, same transaction, 2 clients |")
	}
	// JSON bytes per call: the same for Quarters and the peer.
	var sizes []string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "| Quarters, Connect JSON |") || strings.HasPrefix(line, "| Node/Express") {
			cells := strings.Split(line, "|")
			sizes = append(sizes, strings.TrimSpace(cells[7]))
		}
	}
	if withPeer {
		require.Len(t, sizes, 2)
		require.Equal(t, sizes[0], sizes[1], "bytes/call of the peer and of Quarters")
	}
}
