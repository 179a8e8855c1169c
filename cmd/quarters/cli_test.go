package main

import (
	"bytes"
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/servertest"
	quarters "github.com/quarters-dev/quarters/sdk/go"
)

// runCLI runs the command line in-process with env and returns the exit
// status and what it wrote.
func runCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-h"}, {"--help"}, {"-help"}, {"help"}, {"help", "help"},
		{"serve", "-h"}, {"serve", "--help"}, {"help", "serve"}, {"migrate", "-h"}, {"help", "migrate"},
	} {
		code, out, errOut := runCLI(t, nil, args...)
		require.Equal(t, exitOK, code, "%v: %s", args, errOut)
		require.Empty(t, errOut, args)
		require.Contains(t, out, "usage: quarters", args)
		// Every variable the server reads, with its default.
		for _, s := range settings {
			require.Regexp(t, `(?m)^  `+s.env+` +`+regexpQuote(or(s.def, "-"))+` +\S`, out, "%v lacks %s", args, s.env)
		}
	}
	code, out, _ := runCLI(t, nil, "-h")
	require.Equal(t, exitOK, code)
	for _, want := range []string{"tenants list", "tenants show <id|slug>", "tenants set-plan <id|slug> <plan>",
		"tenants suspend", "tenants resume", "tenants delete <id|slug>", "tenants cancel-deletion <id|slug>",
		"audit [--tenant <id|slug>]", "version", "migrate", "QUARTERS_URL", "http://127.0.0.1:8080"} {
		require.Contains(t, out, want)
	}
	// Commands without the server's environment still explain their flags.
	for _, args := range [][]string{
		{"version", "-h"}, {"tenants", "-h"}, {"tenants", "list", "-h"}, {"tenants", "show", "--help"},
		{"tenants", "set-plan", "-h"}, {"tenants", "suspend", "-h"}, {"tenants", "resume", "-h"}, {"audit", "-h"}, {"help", "audit"},
		{"tenants", "delete", "-h"}, {"tenants", "cancel-deletion", "-h"},
	} {
		code, out, errOut := runCLI(t, nil, args...)
		require.Equal(t, exitOK, code, "%v: %s", args, errOut)
		require.Empty(t, errOut, args)
		require.Contains(t, out, "usage: quarters", args)
	}
	code, out, _ = runCLI(t, nil, "tenants", "show", "-h")
	require.Equal(t, exitOK, code)
	for _, want := range []string{"-json", "-url", "-platform-key", "QUARTERS_PLATFORM_KEY"} {
		require.Contains(t, out, want)
	}
}

func regexpQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"-x"}, `unknown command "-x"`},
		{[]string{"migrate", "-x"}, "flag provided but not defined: -x"},
		{[]string{"migrate", "extra"}, `unexpected argument "extra"`},
		{[]string{"serve", "extra"}, `unexpected argument "extra"`},
		{[]string{"tenants"}, "tenants needs a command"},
		{[]string{"tenants", "rename"}, `unknown tenants command "rename"`},
		{[]string{"tenants", "show"}, "want 1 argument(s), got 0"},
		{[]string{"tenants", "set-plan", "acme"}, "want 2 argument(s), got 1"},
		{[]string{"tenants", "list", "--status", "gone"}, `--status "gone": want active or suspended`},
		{[]string{"audit", "--limit", "-1"}, "--limit"},
		{[]string{"help", "bogus"}, `unknown command "bogus"`},
		{[]string{"migrate"}, "QUARTERS_OWNER_DATABASE_URL"},
	} {
		code, out, errOut := runCLI(t, nil, tc.args...)
		require.Equal(t, exitUsage, code, tc.args)
		require.Contains(t, errOut, tc.want, tc.args)
		require.Contains(t, errOut, "Run 'quarters ", tc.args)
		require.NotContains(t, out, "Quarters is listening", tc.args)
	}
	// A bad setting stops serve before it binds anything: exit 1, named.
	code, _, errOut := runCLI(t, map[string]string{"QUARTERS_LOG_LEVEL": "loud"}, "serve")
	require.Equal(t, exitError, code)
	require.Contains(t, errOut, `quarters: QUARTERS_LOG_LEVEL="loud"`)
}

// TestHelpListsEveryVariable records every variable the server's
// configuration and the operator commands ask for, and checks that help
// lists each; and that nothing in the command reads the environment
// around the env function the recording sees.
func TestHelpListsEveryVariable(t *testing.T) {
	t.Parallel()
	read := map[string]bool{}
	record := func(k string) string { read[k] = true; return "" }
	_, err := loadConfig(record)
	require.NoError(t, err)
	var out, errOut bytes.Buffer
	// Port 1: refused at once, after every variable has been read.
	code := run(context.Background(), []string{"tenants", "list", "--url", "http://127.0.0.1:1"}, record, &out, &errOut)
	require.Equal(t, exitError, code)
	require.Contains(t, errOut.String(), "no platform key")
	require.True(t, read["QUARTERS_URL"] && read["QUARTERS_PLATFORM_KEY"], "%v", read)
	require.Greater(t, len(read), 20)

	code, help, _ := runCLI(t, nil, "help")
	require.Equal(t, exitOK, code)
	for k := range read {
		require.Regexp(t, `(?m)^  `+k+` `, help, "help does not list %s", k)
	}

	// The only direct use of the process environment is main handing
	// os.Getenv to run.
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	uses := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == "os" && strings.Contains("Getenv LookupEnv Environ ExpandEnv", sel.Sel.Name) {
				uses++
				require.Equal(t, "main.go", name, "%s reads the environment directly: %s", name, fset.Position(sel.Pos()))
				require.Equal(t, "Getenv", sel.Sel.Name)
			}
			return true
		})
	}
	require.Equal(t, 1, uses, "main passes os.Getenv to run once")
}

func TestVersion(t *testing.T) {
	t.Parallel()
	code, out, _ := runCLI(t, nil, "version")
	require.Equal(t, exitOK, code)
	require.Contains(t, out, "quarters ")
	require.Contains(t, out, "go:      "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH)

	var b bytes.Buffer
	writeVersion(&b, &debug.BuildInfo{
		Main: debug.Module{Path: "github.com/quarters-dev/quarters", Version: "v1.4.2"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "85a8d39f00"}, {Key: "vcs.modified", Value: "true"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"},
		},
	})
	lines := strings.Split(b.String(), "\n")
	require.Equal(t, "quarters v1.4.2", lines[0])
	require.Equal(t, "commit:  85a8d39f00 (modified), 2026-12-01T10:00:00Z", lines[1])
	b.Reset()
	writeVersion(&b, nil)
	require.Contains(t, b.String(), "quarters unknown\ncommit:  unknown")
}

func TestOperatorCommands(t *testing.T) {
	t.Parallel()
	srv := servertest.New(t)
	a, b := srv.SignUp(t), srv.SignUp(t)
	env := map[string]string{"QUARTERS_URL": srv.URL, "QUARTERS_PLATFORM_KEY": srv.PlatformKey}
	ok := func(args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, env, args...)
		require.Equal(t, exitOK, code, "%v: %s", args, errOut)
		return out
	}
	ctx := context.Background()

	// list: a table, and JSON that names both tenants.
	out := ok("tenants", "list")
	require.Regexp(t, `(?m)^ID +SLUG +NAME +PLAN +STATUS +OWNER +CREATED$`, out)
	require.Regexp(t, `(?m)^`+a.ID+` +`+a.Slug+` +Tenant `+a.Slug+` +free +active +`+a.OwnerEmail+` +20\d\d-`, out)
	require.Contains(t, out, b.Slug)
	var list quartersv1.ListTenantsResponse
	require.NoError(t, protojson.Unmarshal([]byte(ok("tenants", "list", "--json")), &list))
	slugs := map[string]string{}
	for _, tn := range list.GetTenants() {
		slugs[tn.GetId()] = tn.GetSlug()
	}
	require.Equal(t, a.Slug, slugs[a.ID])
	require.Equal(t, b.Slug, slugs[b.ID])

	// show, by slug and by id, with flags after the argument.
	out = ok("tenants", "show", a.Slug)
	require.Regexp(t, `(?m)^id: +`+a.ID+`$`, out)
	require.Regexp(t, `(?m)^plan: +free$`, out)
	require.Regexp(t, `(?m)^status: +active$`, out)
	require.Regexp(t, `(?m)^limits: +requests_per_minute=\d+ burst=\d+ max_projects=\d+`, out)
	require.Equal(t, out, ok("tenants", "show", a.ID))
	var show quartersv1.PlatformServiceGetTenantResponse
	require.NoError(t, protojson.Unmarshal([]byte(ok("tenants", "show", a.Slug, "--json")), &show))
	require.Equal(t, a.ID, show.GetDetails().GetTenant().GetId())
	freeRate := show.GetDetails().GetLimits().GetRequestsPerMinute()

	// set-plan, then show reports the new plan and its limits; b stays.
	out = ok("tenants", "set-plan", a.Slug, "pro")
	require.Regexp(t, `(?m)^plan: +pro$`, out)
	require.Contains(t, out, `audited:   SetPlan {"plan":"free"} → {"plan":"pro"}`)
	showJSON := ok("tenants", "show", "--json", a.ID)
	require.Contains(t, showJSON, "\n      \"plan\": \"pro\",\n", "indented, one space after the colon")
	require.Equal(t, showJSON, ok("tenants", "show", "--json", a.Slug), "stable JSON")
	require.NoError(t, protojson.Unmarshal([]byte(showJSON), &show))
	require.Equal(t, "pro", show.GetDetails().GetTenant().GetPlan())
	require.Greater(t, show.GetDetails().GetLimits().GetRequestsPerMinute(), freeRate)
	plan, err := a.Plans.GetPlan(ctx, connect.NewRequest(&quartersv1.GetPlanRequest{}))
	require.NoError(t, err)
	require.Equal(t, "pro", plan.Msg.GetPlan(), "the tenant sees its new plan")
	require.Regexp(t, `(?m)^plan: +free$`, ok("tenants", "show", b.Slug))
	out = ok("tenants", "list", "--plan", "pro")
	require.Contains(t, out, a.Slug)
	require.NotContains(t, out, b.Slug)

	// suspend: the tenant's API key is refused as TENANT_SUSPENDED; b's
	// is not; resume lets a back in.
	out = ok("tenants", "suspend", a.Slug)
	require.Regexp(t, `(?m)^status: +suspended$`, out)
	_, err = a.Projects.ListProjects(ctx, connect.NewRequest(&quartersv1.ListProjectsRequest{}))
	require.True(t, quarters.TenantSuspended(err), "%v", err)
	_, err = b.Projects.ListProjects(ctx, connect.NewRequest(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
	out = ok("tenants", "list", "--status", "suspended")
	require.Contains(t, out, a.Slug)
	require.NotContains(t, out, b.Slug)
	require.NotContains(t, ok("tenants", "list", "--status", "active"), a.Slug)
	out = ok("tenants", "resume", a.ID, "--json")
	var resumed quartersv1.ResumeTenantResponse
	require.NoError(t, protojson.Unmarshal([]byte(out), &resumed))
	require.Equal(t, quartersv1.TenantStatus_TENANT_STATUS_ACTIVE, resumed.GetDetails().GetTenant().GetStatus())
	require.Equal(t, "ResumeTenant", resumed.GetAuditEvent().GetAction())
	_, err = a.Projects.ListProjects(ctx, connect.NewRequest(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)

	// delete: a is refused as TENANT_DELETION_PENDING, show names the
	// purge; cancel-deletion lets it back in.
	out = ok("tenants", "delete", a.Slug)
	require.Regexp(t, `(?m)^purge: +20\S+ \(deletion pending\)$`, out)
	require.Regexp(t, `(?m)^audited: +DeleteTenant \{"purge_time":null\} → \{"purge_time":"20`, out)
	_, err = a.Projects.ListProjects(ctx, connect.NewRequest(&quartersv1.ListProjectsRequest{}))
	_, pending := quarters.TenantDeletionPending(err)
	require.True(t, pending, "%v", err)
	require.Regexp(t, `(?m)^purge: +20\S+ \(deletion pending\)$`, ok("tenants", "show", a.Slug))
	out = ok("tenants", "cancel-deletion", a.Slug)
	require.Regexp(t, `(?m)^purge: +-$`, out)
	_, err = a.Projects.ListProjects(ctx, connect.NewRequest(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
	code, _, errOut := runCLI(t, env, "tenants", "cancel-deletion", a.Slug)
	require.Equal(t, exitError, code)
	require.Contains(t, errOut, "failed_precondition: no deletion of this tenant is pending")

	// audit: a's changes, newest first; b has none.
	var audit quartersv1.ListAuditEventsResponse
	require.NoError(t, protojson.Unmarshal([]byte(ok("audit", "--tenant", a.Slug, "--json")), &audit))
	var actions []string
	for _, e := range audit.GetAuditEvents() {
		require.Equal(t, a.ID, e.GetTenantId())
		actions = append(actions, e.GetAction())
	}
	require.Equal(t, []string{"CancelTenantDeletion", "DeleteTenant", "ResumeTenant", "SuspendTenant", "SetPlan"}, actions)
	out = ok("audit", "--tenant", a.ID)
	require.Regexp(t, `(?m)^TIME +TENANT +ACTION +ACTOR +BEFORE +AFTER +ID$`, out)
	require.Regexp(t, `(?m)^20\S+ +`+a.ID+` +SetPlan +platform +\{"plan":"free"\} +\{"plan":"pro"\} +`+audit.GetAuditEvents()[4].GetId()+`$`, out)
	require.Equal(t, 1, strings.Count(ok("audit", "--tenant", a.ID, "--limit", "1"), a.ID))
	require.NoError(t, protojson.Unmarshal([]byte(ok("audit", "--tenant", b.Slug, "--json")), &audit))
	require.Empty(t, audit.GetAuditEvents())

	// Failures print the Connect code and message and exit 1.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tenants", "show", "no-such-tenant"}, `quarters: not_found: no tenant has the id or slug "no-such-tenant"`},
		{[]string{"tenants", "show", uuid.NewString()}, "quarters: not_found: tenant not found"},
		{[]string{"tenants", "set-plan", a.Slug, "platinum"}, "quarters: not_found: plan not found"},
		{[]string{"tenants", "set-plan", a.Slug, "Pro!"}, "quarters: invalid_argument: "},
		{[]string{"tenants", "suspend", uuid.NewString()}, "quarters: not_found: tenant not found"},
	} {
		code, out, errOut := runCLI(t, env, tc.args...)
		require.Equal(t, exitError, code, tc.args)
		require.Empty(t, out, tc.args)
		require.Contains(t, errOut, tc.want, tc.args)
	}
	require.Regexp(t, `(?m)^plan: +pro$`, ok("tenants", "show", a.Slug), "failed changes change nothing")
}

func TestOperatorCredentials(t *testing.T) {
	t.Parallel()
	srv := servertest.New(t)
	a := srv.SignUp(t)
	for name, tc := range map[string]struct {
		env  map[string]string
		args []string
		want []string
	}{
		"wrong platform key": {
			env:  map[string]string{"QUARTERS_URL": srv.URL, "QUARTERS_PLATFORM_KEY": "not-the-platform-key-0123456789abcdef"},
			args: []string{"tenants", "list"},
			want: []string{"quarters: unauthenticated: ", "check that QUARTERS_PLATFORM_KEY (or --platform-key) is the server's QUARTERS_PLATFORM_KEY"},
		},
		"wrong key as a flag, over the variable": {
			env:  map[string]string{"QUARTERS_URL": srv.URL, "QUARTERS_PLATFORM_KEY": srv.PlatformKey},
			args: []string{"tenants", "show", a.Slug, "--platform-key", "not-the-platform-key-0123456789abcdef"},
			want: []string{"quarters: unauthenticated: "},
		},
		"a tenant's API key": {
			env:  map[string]string{"QUARTERS_PLATFORM_KEY": a.Key},
			args: []string{"audit", "--url", srv.URL},
			want: []string{"quarters: permission_denied: ", "QUARTERS_PLATFORM_KEY"},
		},
		"no key": {
			env:  map[string]string{"QUARTERS_URL": srv.URL},
			args: []string{"tenants", "suspend", a.Slug},
			want: []string{"quarters: no platform key: set QUARTERS_PLATFORM_KEY (or --platform-key)"},
		},
	} {
		code, out, errOut := runCLI(t, tc.env, tc.args...)
		require.Equal(t, exitError, code, name)
		require.Empty(t, out, name)
		for _, w := range tc.want {
			require.Contains(t, errOut, w, name)
		}
	}
	// None of that suspended the tenant.
	_, err := a.Projects.ListProjects(context.Background(), connect.NewRequest(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
}

// TestReadmeListsEverySetting keeps README's configuration table in step
// with the settings table help prints.
func TestReadmeListsEverySetting(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	for _, s := range settings {
		require.Contains(t, string(readme), "| `"+s.env+"` |", "README's configuration table lacks %s", s.env)
	}
	for _, cmd := range []string{"quarters tenants list", "quarters tenants show", "quarters tenants set-plan",
		"quarters tenants suspend", "quarters tenants resume", "quarters tenants delete", "quarters tenants cancel-deletion",
		"quarters audit", "quarters version", "quarters help"} {
		require.Contains(t, string(readme), cmd)
	}
}

// TestBinaryExitCodes runs the built binary: main passes run's status to
// the process.
func TestBinaryExitCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	t.Parallel()
	bin := buildServer(t)
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"-h"}, exitOK, "QUARTERS_DATA_DIR", ""},
		{[]string{"migrate", "-h"}, exitOK, "usage: quarters migrate", ""},
		{[]string{"version"}, exitOK, "go:      " + runtime.Version(), ""},
		{[]string{"bogus"}, exitUsage, "", `unknown command "bogus"`},
		{[]string{"tenants", "list", "--url", "http://127.0.0.1:1", "--platform-key", "k"}, exitError, "", "quarters: unavailable: "},
	} {
		cmd := exec.Command(bin, tc.args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		require.Equal(t, tc.code, code, "%v: %s", tc.args, stderr.String())
		require.Contains(t, stdout.String(), tc.stdout, tc.args)
		require.Contains(t, stderr.String(), tc.stderr, tc.args)
	}
}

// TestOperatorTimeout: a server that accepts and never answers fails the
// command after --timeout, instead of hanging it.
func TestOperatorTimeout(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	conns := make(chan net.Conn, 16)
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-conns:
				c.Close()
			default:
				return
			}
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c // held open, unanswered
		}
	}()
	code, _, errOut := runCLI(t, map[string]string{"QUARTERS_PLATFORM_KEY": "k"},
		"tenants", "list", "--url", "http://"+ln.Addr().String(), "--timeout", "200ms")
	require.Equal(t, exitError, code)
	require.Contains(t, errOut, "quarters: deadline_exceeded: ")
	require.Contains(t, errOut, "no answer within --timeout")
}

// TestParse: flags anywhere among the arguments; after "--" everything is
// an argument.
func TestParse(t *testing.T) {
	t.Parallel()
	c := &cli{env: func(string) string { return "" }, stdout: io.Discard, stderr: io.Discard}
	for _, tc := range []struct {
		args []string
		pos  []string
		json bool
	}{
		{[]string{"acme", "pro"}, []string{"acme", "pro"}, false},
		{[]string{"--json", "acme", "pro"}, []string{"acme", "pro"}, true},
		{[]string{"acme", "--json", "pro"}, []string{"acme", "pro"}, true},
		{[]string{"acme", "pro", "-json"}, []string{"acme", "pro"}, true},
		{[]string{"acme", "--", "--json"}, []string{"acme", "--json"}, false},
	} {
		fs := c.flagSet("t", "", "")
		j := fs.Bool("json", false, "")
		pos, err := parse(fs, tc.args, 2)
		require.NoError(t, err, tc.args)
		require.Equal(t, tc.pos, pos, tc.args)
		require.Equal(t, tc.json, *j, tc.args)
	}
}
