// Package archtest holds the test that keeps the package graph pointing
// one way: cmd → app → services → shared concerns → db → tenancy.
package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/quarters-dev/quarters/"

type pkg struct {
	ImportPath string
	Imports    []string
	Standard   bool
}

// packages lists every package of the module with its non-test imports.
func packages(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", module+"...")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "go list: %s", stderr.String())
	dec := json.NewDecoder(strings.NewReader(string(out)))
	got := map[string][]string{}
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		got[strings.TrimPrefix(p.ImportPath, module)] = p.Imports
	}
	require.Contains(t, got, "db", "go list found the module's packages")
	return got
}

// own returns the module's packages among imports, module prefix trimmed.
func own(imports []string) []string {
	var out []string
	for _, imp := range imports {
		if rest, ok := strings.CutPrefix(imp, module); ok {
			out = append(out, rest)
		}
	}
	return out
}

// services are the Connect service implementations: they never import
// each other (shared logic moves down a level).
var services = []string{
	"internal/analytics", "internal/authsvc", "internal/document", "internal/member",
	"internal/plan", "internal/platform", "internal/project", "internal/tenantsvc", "internal/webhooksvc",
}

func TestDependencyDirection(t *testing.T) {
	t.Parallel()
	pkgs := packages(t)
	for path, imports := range pkgs {
		deps := own(imports)
		switch {
		case path == "internal/tenancy":
			// The leaf: the standard library and uuid only.
			for _, imp := range imports {
				isStd := !strings.Contains(strings.SplitN(imp, "/", 2)[0], ".")
				require.True(t, isStd || imp == "github.com/google/uuid", "tenancy imports %s", imp)
			}
		case path == "db" || strings.HasPrefix(path, "db/"):
			// The bottom layer: the generated queries and the domain
			// types, never a server package (nor go-redis, connect, authn).
			for _, d := range deps {
				ok := d == "gen/dbsqlc" || d == "internal/tenancy" || d == "db" || strings.HasPrefix(d, "db/")
				require.True(t, ok, "%s imports %s: db is the bottom layer", path, d)
			}
			for _, imp := range imports {
				for _, banned := range []string{"connectrpc.com/", "github.com/redis/"} {
					require.False(t, strings.HasPrefix(imp, banned), "%s imports %s", path, imp)
				}
			}
		case strings.HasPrefix(path, "sdk/"):
			for _, d := range deps {
				require.False(t, strings.HasPrefix(d, "internal/") || d == "db" || strings.HasPrefix(d, "db/"), "%s imports %s: the SDK is the server's client, not part of it", path, d)
			}
		}
		for _, d := range deps {
			require.False(t, strings.HasPrefix(d, "cmd/"), "%s imports the command %s", path, d)
		}
		for _, svc := range services {
			if path == svc {
				for _, other := range services {
					require.NotContains(t, deps, other, "service %s imports service %s", svc, other)
				}
			}
		}
	}
}

// TestSDKModuleGraph: the Go SDK is a module of its own whose graph holds
// neither the database driver nor Redis nor the job queue: users get the
// client, not the server's dependencies.
func TestSDKModuleGraph(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{"../../sdk/go", "../../gen/quarters"} {
		cmd := exec.Command("go", "list", "-m", "all")
		cmd.Dir = dir
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "%s: go list -m all: %s", dir, stderr.String())
		mods := string(out)
		require.Contains(t, mods, "connectrpc.com/connect", "%s: go list found its modules", dir)
		for _, banned := range []string{"github.com/jackc/pgx", "github.com/redis/go-redis", "github.com/riverqueue/river", "github.com/quarters-dev/quarters "} {
			require.NotContains(t, mods, banned, "%s's module graph", dir)
		}
	}
}
