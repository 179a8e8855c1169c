package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"connectrpc.com/connect"

	"github.com/quarters-dev/quarters/db"
)

// Exit statuses of run.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed
	exitUsage = 2 // the command line was wrong
)

// cli is one invocation: its environment and where it writes. Every
// command reads the environment through env only, so tests run commands
// in-process and help can list what is read.
type cli struct {
	env            func(string) string
	stdout, stderr io.Writer
}

// command is one subcommand of quarters.
type command struct {
	name    string
	args    string // the synopsis after the name, e.g. "[flags] <id|slug>"
	summary string
	run     func(ctx context.Context, c *cli, args []string) error
}

// commands are the subcommands in the order help lists them; "tenants"
// has subcommands of its own (tenantCommands).
var commands []command

func init() {
	// Assigned in init: runHelp reads commands, which would otherwise be
	// an initialization cycle.
	commands = []command{
		{"serve", "", "run the API server (the default when no command is given)", runServe},
		{"migrate", "[--database-url URL] [-citus]", "apply the database migrations as the schema owner", runMigrate},
		{"version", "", "print the version, commit and Go version", runVersion},
		{"tenants", "<list|show|set-plan|suspend|resume> …", "administer tenants (PlatformService)", runTenants},
		{"audit", "[--tenant <id|slug>]", "list the audit records of platform changes, newest first", runAudit},
		{"help", "[command]", "print this help, or a command's", runHelp},
	}
}

// errHelp reports that help was asked for and printed: exit 0.
var errHelp = errors.New("help printed")

// usageError is a wrong command line: exit 2, with a pointer to the help.
type usageError struct {
	cmd string // e.g. "tenants show"
	msg string
}

func (e *usageError) Error() string { return e.msg }

// run runs the command line args (without the program name) and returns
// the exit status. With no command it serves.
func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	c := &cli{env: env, stdout: stdout, stderr: stderr}
	name, rest := "serve", args
	if len(args) > 0 {
		name, rest = args[0], args[1:]
	}
	var err error
	switch name {
	case "-h", "-help", "--help":
		err = runHelp(ctx, c, rest)
	default:
		cmd, ok := findCommand(name)
		if !ok {
			err = &usageError{msg: fmt.Sprintf("unknown command %q", name)}
			break
		}
		err = cmd.run(ctx, c, rest)
	}
	return c.exit(err)
}

// exit prints err as the user should see it and returns the exit status.
func (c *cli) exit(err error) int {
	var uerr *usageError
	var cerr *connect.Error
	switch {
	case err == nil || errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &uerr):
		help := "quarters help"
		if uerr.cmd != "" {
			help = "quarters " + uerr.cmd + " -h"
		}
		fmt.Fprintf(c.stderr, "quarters: %s\nRun '%s' for usage.\n", uerr.msg, help)
		return exitUsage
	case errors.As(err, &cerr):
		fmt.Fprintf(c.stderr, "quarters: %s: %s\n", cerr.Code(), cerr.Message())
		for _, line := range errorHints(cerr) {
			fmt.Fprintf(c.stderr, "  %s\n", line)
		}
		return exitError
	default:
		fmt.Fprintln(c.stderr, "quarters:", err)
		return exitError
	}
}

func findCommand(name string) (command, bool) {
	for _, cmd := range commands {
		if cmd.name == name {
			return cmd, true
		}
	}
	return command{}, false
}

// flagSet returns a flag set for the command that prints nothing itself:
// parse reports -h as errHelp after printing help to stdout, and other
// mistakes as a usageError.
func (c *cli) flagSet(name, args, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(c.stdout, "usage: quarters %s %s\n\n%s\n", name, args, about)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(c.stdout, "\nflags:")
			fs.SetOutput(c.stdout)
			fs.PrintDefaults()
			fs.SetOutput(io.Discard)
		}
	}
	return fs
}

// parse parses flags wherever they are among the arguments (the standard
// flag package stops at the first non-flag, so "show acme --json" would
// ignore --json) and returns the positional arguments; after "--" all
// arguments are positional. It wants exactly want positional arguments
// when want >= 0.
func parse(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	// The flag package prints usage on every error; only -h should.
	usage := fs.Usage
	fs.Usage = func() {}
	defer func() { fs.Usage = usage }()
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				usage()
				return nil, errHelp
			}
			return nil, &usageError{cmd: fs.Name(), msg: err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	if want >= 0 && len(pos) != want {
		msg := fmt.Sprintf("want %d argument(s), got %d", want, len(pos))
		if len(pos) > want {
			msg = fmt.Sprintf("unexpected argument %q", pos[want])
		}
		return nil, &usageError{cmd: fs.Name(), msg: msg}
	}
	return pos, nil
}

func runHelp(ctx context.Context, c *cli, args []string) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, ok := findCommand(args[0])
		if !ok {
			return &usageError{msg: fmt.Sprintf("no help for unknown command %q", args[0])}
		}
		if cmd.name == "help" {
			args = nil
		} else {
			// Every command answers -h with its own help.
			return cmd.run(ctx, c, []string{"-h"})
		}
	}
	w := c.stdout
	fmt.Fprint(w, `Quarters is a multi-tenant API server.

usage: quarters [command] [flags] [arguments]

commands:
`)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, cmd := range commands {
		if cmd.name != "tenants" {
			fmt.Fprintf(tw, "  %s %s\t%s\n", cmd.name, cmd.args, cmd.summary)
			continue
		}
		for _, sub := range tenantCommands {
			fmt.Fprintf(tw, "  tenants %s %s\t%s\n", sub.name, sub.args, sub.summary)
		}
	}
	tw.Flush()
	fmt.Fprint(w, "\nRun 'quarters <command> -h' for a command's flags.\n\n")
	writeOperatorEnv(w)
	fmt.Fprintln(w)
	writeServerEnv(w)
	return errHelp
}

// writeServerEnv lists every variable the server reads, from the same
// table loadConfig reads them with.
func writeServerEnv(w io.Writer) {
	fmt.Fprint(w, "The server (serve, migrate) reads these environment variables:\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  VARIABLE\tDEFAULT\tMEANING")
	for _, s := range settings {
		def := s.def
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.env, def, s.help)
	}
	tw.Flush()
}

func runServe(ctx context.Context, c *cli, args []string) error {
	fs := c.flagSet("serve", "", "Runs the API server, configured by the environment only. With no DATABASE_URL it starts\n"+
		"a private PostgreSQL in QUARTERS_DATA_DIR and migrates it, so one command gives a working server.")
	fs.Usage = withEnv(c, fs.Usage)
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	cfg, err := loadConfig(c.env)
	if err != nil {
		return err
	}
	logger := newLogger(c.stderr, cfg.LogLevel)
	slog.SetDefault(logger)
	return serve(ctx, cfg, logger, c.stdout)
}

// withEnv appends the server's environment to a command's help.
func withEnv(c *cli, usage func()) func() {
	return func() {
		usage()
		fmt.Fprintln(c.stdout)
		writeServerEnv(c.stdout)
	}
}

func runMigrate(ctx context.Context, c *cli, args []string) error {
	fs := c.flagSet("migrate", "[--database-url URL] [-citus]", "Applies the database migrations as the schema owner (the server's app role\n"+
		"owns nothing, so it cannot migrate). The embedded PostgreSQL is migrated by serve itself.\n"+
		"With -citus, on a Citus coordinator, it then distributes the tenant tables by tenant_id\n"+
		"(README, Running on Citus); run it again after every upgrade.")
	fs.Usage = withEnv(c, fs.Usage)
	url := fs.String("database-url", "", "the schema owner's database URL (default $QUARTERS_OWNER_DATABASE_URL)")
	citus := fs.Bool("citus", false, "then convert the schema into Citus distributed and reference tables")
	shards := fs.Int("citus-shard-count", 32, "with -citus: shards of the tenant tables' colocation group, when it is created")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	cfg, err := loadConfig(c.env)
	if err != nil {
		return err
	}
	slog.SetDefault(newLogger(c.stderr, cfg.LogLevel))
	if *url == "" {
		*url = cfg.OwnerDatabaseURL
	}
	if *url == "" {
		return &usageError{cmd: "migrate", msg: "migrate needs the schema owner's database URL: --database-url or QUARTERS_OWNER_DATABASE_URL"}
	}
	if err := db.Migrate(ctx, *url); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "migrations applied")
	if !*citus {
		return nil
	}
	if err := db.MigrateCitus(ctx, *url, &db.CitusOpts{ShardCount: *shards}); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "citus: tenant tables distributed by tenant_id")
	return nil
}

func runVersion(_ context.Context, c *cli, args []string) error {
	fs := c.flagSet("version", "", "Prints the module version, the commit it was built from and the Go version.")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	bi, _ := debug.ReadBuildInfo()
	writeVersion(c.stdout, bi)
	return nil
}

// buildVersion is the module version the binary was built as, for the
// traces' service.version.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}

// writeVersion prints what bi (nil when the binary carries none) says of
// the build.
func writeVersion(w io.Writer, bi *debug.BuildInfo) {
	version, commit, modified, built := "unknown", "", false, ""
	if bi != nil {
		version = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			case "vcs.time":
				built = s.Value
			}
		}
	}
	if version == "" {
		version = "(devel)"
	}
	fmt.Fprintf(w, "quarters %s\n", version)
	switch {
	case commit == "":
		fmt.Fprintln(w, "commit:  unknown (built without VCS stamping, e.g. -buildvcs=false)")
	default:
		if modified {
			commit += " (modified)"
		}
		if built != "" {
			commit += ", " + built
		}
		fmt.Fprintf(w, "commit:  %s\n", commit)
	}
	fmt.Fprintf(w, "go:      %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
