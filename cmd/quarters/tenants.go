package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	quarters "github.com/quarters-dev/quarters/sdk/go"
)

// The operator commands' environment: the server to call and the
// platform credential (the same variable the server reads its key from).
const (
	envURL         = "QUARTERS_URL"
	envPlatformKey = "QUARTERS_PLATFORM_KEY"
	defaultURL     = "http://127.0.0.1:8080"
)

// writeOperatorEnv lists the variables the operator commands read.
func writeOperatorEnv(w io.Writer) {
	fmt.Fprint(w, "The operator commands (tenants, audit) read these environment variables:\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  VARIABLE\tDEFAULT\tMEANING")
	fmt.Fprintf(tw, "  %s\t%s\t%s\n", envURL, defaultURL, "the server's base URL (--url)")
	fmt.Fprintf(tw, "  %s\t%s\t%s\n", envPlatformKey, "-", "the server's platform credential (--platform-key)")
	tw.Flush()
}

// operator holds the flags every operator command shares.
type operator struct {
	url, key string
	json     bool
	timeout  time.Duration
}

func (c *cli) operatorFlags(fs *flag.FlagSet) *operator {
	o := &operator{}
	fs.StringVar(&o.url, "url", or(c.env(envURL), defaultURL), "the server's base URL ($"+envURL+")")
	// The default is not shown: it is a secret.
	fs.StringVar(&o.key, "platform-key", "", "the platform credential (default $"+envPlatformKey+"; prefer the variable: flags show in ps)")
	fs.BoolVar(&o.json, "json", false, "print the response as JSON (protojson) instead of a table")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long one request may take")
	return o
}

// client returns a Platform client with the platform credential.
func (c *cli) client(o *operator) (*quarters.Client, error) {
	key := or(o.key, c.env(envPlatformKey))
	if key == "" {
		return nil, fmt.Errorf("no platform key: set %s (or --platform-key) to the server's QUARTERS_PLATFORM_KEY", envPlatformKey)
	}
	// A server that accepts but never answers must not hang the command.
	hc := &http.Client{Timeout: o.timeout}
	return quarters.NewClient(o.url, quarters.WithAPIKey(key), quarters.WithUserAgent("quarters-cli"), quarters.WithHTTPClient(hc)), nil
}

// errorHints are lines that say what to do about a refusal, after its code
// and message.
func errorHints(err *connect.Error) []string {
	var hints []string
	for _, d := range err.Details() {
		if m, e := d.Value(); e == nil {
			if info, ok := m.(interface{ GetReason() string }); ok && info.GetReason() != "" {
				hints = append(hints, "reason: "+info.GetReason())
			}
		}
	}
	for _, v := range quarters.Violations(err) {
		if line := fmt.Sprintf("%s: %s", v.Field, v.Message); !strings.Contains(err.Message(), line) {
			hints = append(hints, line)
		}
	}
	switch err.Code() {
	case connect.CodeUnauthenticated, connect.CodePermissionDenied:
		hints = append(hints, "check that "+envPlatformKey+" (or --platform-key) is the server's QUARTERS_PLATFORM_KEY")
	case connect.CodeDeadlineExceeded:
		hints = append(hints, "no answer within --timeout from the server at "+envURL+" (or --url)")
	case connect.CodeUnavailable:
		hints = append(hints, "check that the server runs at "+envURL+" (or --url)")
	}
	return hints
}

// tenantCommand is a subcommand of "quarters tenants".
type tenantCommand struct {
	name, args, summary string
	run                 func(ctx context.Context, c *cli, args []string) error
}

var tenantCommands []tenantCommand

func init() {
	tenantCommands = []tenantCommand{
		{"list", "[--status active|suspended] [--plan P]", "list tenants, newest first (ListTenants)", runTenantsList},
		{"show", "<id|slug>", "show a tenant with its effective limits and overrides (GetTenant)", runTenantsShow},
		{"set-plan", "<id|slug> <plan>", "move a tenant to another plan (SetPlan)", runTenantsSetPlan},
		{"suspend", "<id|slug>", "refuse every call of the tenant's credentials; its data stays (SuspendTenant)", tenantChange("suspend", suspend)},
		{"resume", "<id|slug>", "let a suspended tenant use the API again (ResumeTenant)", tenantChange("resume", resume)},
		{"delete", "<id|slug>", "delete a tenant and all its data after the grace period (DeleteTenant)", tenantChange("delete", deleteTenant)},
		{"cancel-deletion", "<id|slug>", "cancel a tenant's pending deletion (CancelTenantDeletion)", tenantChange("cancel-deletion", cancelDeletion)},
	}
}

func runTenants(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		w := c.stdout
		if len(args) == 0 {
			w = c.stderr
		}
		fmt.Fprint(w, "usage: quarters tenants <command> [flags]\n\ncommands:\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, sub := range tenantCommands {
			fmt.Fprintf(tw, "  %s %s\t%s\n", sub.name, sub.args, sub.summary)
		}
		tw.Flush()
		fmt.Fprint(w, "\nRun 'quarters tenants <command> -h' for a command's flags.\n")
		if len(args) == 0 {
			return &usageError{cmd: "tenants", msg: "tenants needs a command"}
		}
		return errHelp
	}
	for _, sub := range tenantCommands {
		if sub.name == args[0] {
			return sub.run(ctx, c, args[1:])
		}
	}
	return &usageError{cmd: "tenants", msg: fmt.Sprintf("unknown tenants command %q", args[0])}
}

func runTenantsList(ctx context.Context, c *cli, args []string) error {
	fs := c.flagSet("tenants list", "[flags]", "Lists tenants, newest first.")
	o := c.operatorFlags(fs)
	status := fs.String("status", "", "only tenants with this status: active or suspended")
	plan := fs.String("plan", "", "only tenants on this plan, e.g. free")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	req := &quartersv1.ListTenantsRequest{Plan: *plan, PageSize: 100}
	switch *status {
	case "":
	case "active":
		req.Status = quartersv1.TenantStatus_TENANT_STATUS_ACTIVE
	case "suspended":
		req.Status = quartersv1.TenantStatus_TENANT_STATUS_SUSPENDED
	default:
		return &usageError{cmd: "tenants list", msg: fmt.Sprintf("--status %q: want active or suspended", *status)}
	}
	qc, err := c.client(o)
	if err != nil {
		return err
	}
	all := &quartersv1.ListTenantsResponse{}
	for {
		resp, err := qc.Platform.ListTenants(ctx, connect.NewRequest(req))
		if err != nil {
			return err
		}
		all.Tenants = append(all.Tenants, resp.Msg.GetTenants()...)
		if req.PageToken = resp.Msg.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	if o.json {
		return c.printJSON(all)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSLUG\tNAME\tPLAN\tSTATUS\tOWNER\tCREATED")
	for _, t := range all.Tenants {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.GetId(), t.GetSlug(), t.GetName(), t.GetPlan(),
			statusName(t.GetStatus()), t.GetOwnerEmail(), timeText(t.GetCreateTime()))
	}
	return tw.Flush()
}

func runTenantsShow(ctx context.Context, c *cli, args []string) error {
	fs := c.flagSet("tenants show", "[flags] <id|slug>", "Shows a tenant with its effective limits and features, and the overrides that produce them.")
	o := c.operatorFlags(fs)
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	qc, err := c.client(o)
	if err != nil {
		return err
	}
	id, err := resolveTenant(ctx, qc, pos[0])
	if err != nil {
		return err
	}
	resp, err := qc.Platform.GetTenant(ctx, connect.NewRequest(&quartersv1.PlatformServiceGetTenantRequest{TenantId: id}))
	if err != nil {
		return err
	}
	if o.json {
		return c.printJSON(resp.Msg)
	}
	return writeDetails(c.stdout, resp.Msg.GetDetails())
}

func runTenantsSetPlan(ctx context.Context, c *cli, args []string) error {
	fs := c.flagSet("tenants set-plan", "[flags] <id|slug> <plan>", "Moves a tenant to another plan (e.g. free, pro, enterprise); the change is audited.")
	o := c.operatorFlags(fs)
	pos, err := parse(fs, args, 2)
	if err != nil {
		return err
	}
	qc, err := c.client(o)
	if err != nil {
		return err
	}
	id, err := resolveTenant(ctx, qc, pos[0])
	if err != nil {
		return err
	}
	resp, err := qc.Platform.SetPlan(ctx, connect.NewRequest(&quartersv1.SetPlanRequest{TenantId: id, Plan: pos[1]}))
	if err != nil {
		return err
	}
	return c.printChange(o, resp.Msg, resp.Msg.GetDetails(), resp.Msg.GetAuditEvent())
}

func suspend(ctx context.Context, qc *quarters.Client, id string) (proto.Message, *quartersv1.TenantDetails, *quartersv1.AuditEvent, error) {
	resp, err := qc.Platform.SuspendTenant(ctx, connect.NewRequest(&quartersv1.SuspendTenantRequest{TenantId: id}))
	if err != nil {
		return nil, nil, nil, err
	}
	return resp.Msg, resp.Msg.GetDetails(), resp.Msg.GetAuditEvent(), nil
}

func resume(ctx context.Context, qc *quarters.Client, id string) (proto.Message, *quartersv1.TenantDetails, *quartersv1.AuditEvent, error) {
	resp, err := qc.Platform.ResumeTenant(ctx, connect.NewRequest(&quartersv1.ResumeTenantRequest{TenantId: id}))
	if err != nil {
		return nil, nil, nil, err
	}
	return resp.Msg, resp.Msg.GetDetails(), resp.Msg.GetAuditEvent(), nil
}

func deleteTenant(ctx context.Context, qc *quarters.Client, id string) (proto.Message, *quartersv1.TenantDetails, *quartersv1.AuditEvent, error) {
	resp, err := qc.Platform.DeleteTenant(ctx, connect.NewRequest(&quartersv1.PlatformServiceDeleteTenantRequest{TenantId: id}))
	if err != nil {
		return nil, nil, nil, err
	}
	return resp.Msg, resp.Msg.GetDetails(), resp.Msg.GetAuditEvent(), nil
}

func cancelDeletion(ctx context.Context, qc *quarters.Client, id string) (proto.Message, *quartersv1.TenantDetails, *quartersv1.AuditEvent, error) {
	resp, err := qc.Platform.CancelTenantDeletion(ctx, connect.NewRequest(&quartersv1.PlatformServiceCancelTenantDeletionRequest{TenantId: id}))
	if err != nil {
		return nil, nil, nil, err
	}
	return resp.Msg, resp.Msg.GetDetails(), resp.Msg.GetAuditEvent(), nil
}

// changeAbout is each tenant change command's help.
var changeAbout = map[string]string{
	"suspend":         "Suspends a tenant: every call with its credentials is then refused (PERMISSION_DENIED,\nreason TENANT_SUSPENDED). Its data stays. The change is audited.",
	"resume":          "Resumes a suspended tenant: its credentials work again. The change is audited.",
	"delete":          "Schedules a tenant's deletion: its credentials are refused at once (reason\nTENANT_DELETION_PENDING) but for exporting and cancelling; after the server's grace\nperiod (QUARTERS_TENANT_DELETION_GRACE) every row of it is purged and a deletion\ncertificate kept. A pending deletion is left as it is. The change is audited.",
	"cancel-deletion": "Cancels a tenant's pending deletion: it is as it was. The change is audited.",
}

// tenantChange is suspend, resume, delete or cancel-deletion as a
// command: they differ only in the RPC.
func tenantChange(name string, call func(context.Context, *quarters.Client, string) (proto.Message, *quartersv1.TenantDetails, *quartersv1.AuditEvent, error)) func(context.Context, *cli, []string) error {
	return func(ctx context.Context, c *cli, args []string) error {
		fs := c.flagSet("tenants "+name, "[flags] <id|slug>", changeAbout[name])
		o := c.operatorFlags(fs)
		pos, err := parse(fs, args, 1)
		if err != nil {
			return err
		}
		qc, err := c.client(o)
		if err != nil {
			return err
		}
		id, err := resolveTenant(ctx, qc, pos[0])
		if err != nil {
			return err
		}
		msg, details, event, err := call(ctx, qc, id)
		if err != nil {
			return err
		}
		return c.printChange(o, msg, details, event)
	}
}

func runAudit(ctx context.Context, c *cli, args []string) error {
	fs := c.flagSet("audit", "[flags]", "Lists the audit records of platform changes (plan, overrides, suspension), newest first.")
	o := c.operatorFlags(fs)
	tenant := fs.String("tenant", "", "only this tenant's records (id or slug)")
	limit := fs.Int("limit", 50, "at most this many records; 0 lists all")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *limit < 0 {
		return &usageError{cmd: "audit", msg: "--limit: want 0 (all) or more"}
	}
	qc, err := c.client(o)
	if err != nil {
		return err
	}
	req := &quartersv1.ListAuditEventsRequest{PageSize: 100}
	if *tenant != "" {
		if req.TenantId, err = resolveTenant(ctx, qc, *tenant); err != nil {
			return err
		}
	}
	all := &quartersv1.ListAuditEventsResponse{}
	for {
		resp, err := qc.Platform.ListAuditEvents(ctx, connect.NewRequest(req))
		if err != nil {
			return err
		}
		all.AuditEvents = append(all.AuditEvents, resp.Msg.GetAuditEvents()...)
		req.PageToken = resp.Msg.GetNextPageToken()
		if *limit > 0 && len(all.AuditEvents) >= *limit {
			if len(all.AuditEvents) > *limit || req.PageToken != "" {
				all.AuditEvents = all.AuditEvents[:*limit]
				all.NextPageToken = req.PageToken
				if !o.json {
					defer fmt.Fprintf(c.stderr, "(the first %d records; --limit 0 lists all)\n", *limit)
				}
			}
			break
		}
		if req.PageToken == "" {
			break
		}
	}
	if o.json {
		all.NextPageToken = ""
		return c.printJSON(all)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tTENANT\tACTION\tACTOR\tBEFORE\tAFTER\tID")
	for _, e := range all.AuditEvents {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", timeText(e.GetCreateTime()), e.GetTenantId(), e.GetAction(),
			e.GetActor(), structText(e.GetBefore()), structText(e.GetAfter()), e.GetId())
	}
	return tw.Flush()
}

// resolveTenant returns the id of the tenant idOrSlug names. GetTenant
// and the changes take an id only, so a slug is looked up in ListTenants
// (every page, until it is found).
func resolveTenant(ctx context.Context, qc *quarters.Client, idOrSlug string) (string, error) {
	if _, err := uuid.Parse(idOrSlug); err == nil {
		return idOrSlug, nil
	}
	req := &quartersv1.ListTenantsRequest{PageSize: 100}
	for {
		resp, err := qc.Platform.ListTenants(ctx, connect.NewRequest(req))
		if err != nil {
			return "", err
		}
		for _, t := range resp.Msg.GetTenants() {
			if t.GetSlug() == idOrSlug {
				return t.GetId(), nil
			}
		}
		if req.PageToken = resp.Msg.GetNextPageToken(); req.PageToken == "" {
			return "", connect.NewError(connect.CodeNotFound, fmt.Errorf("no tenant has the id or slug %q", idOrSlug))
		}
	}
}

// printJSON prints m as indented protojson. protojson varies its own
// whitespace on purpose, so encoding/json indents it: stable output for
// scripts that diff it.
func (c *cli) printJSON(m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = out.WriteTo(c.stdout)
	return err
}

// printChange prints the tenant after a change and the change's audit
// record.
func (c *cli) printChange(o *operator, msg proto.Message, d *quartersv1.TenantDetails, e *quartersv1.AuditEvent) error {
	if o.json {
		return c.printJSON(msg)
	}
	if err := writeDetails(c.stdout, d); err != nil {
		return err
	}
	_, err := fmt.Fprintf(c.stdout, "audited:   %s %s → %s (%s)\n", e.GetAction(), structText(e.GetBefore()), structText(e.GetAfter()), e.GetId())
	return err
}

// writeDetails prints a tenant as "field: value" lines. Limits and
// overrides are printed field by field from their descriptors, so a limit
// added to the contract shows up here without a change.
func writeDetails(w io.Writer, d *quartersv1.TenantDetails) error {
	t := d.GetTenant()
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	for _, kv := range [][2]string{
		{"id", t.GetId()}, {"slug", t.GetSlug()}, {"name", t.GetName()}, {"plan", t.GetPlan()},
		{"status", statusName(t.GetStatus())}, {"owner", t.GetOwnerEmail()}, {"created", timeText(t.GetCreateTime())},
		{"purge", or(purgeText(t), "-")},
		{"limits", fieldsText(d.GetLimits(), true)},
		{"features", or(strings.Join(d.GetFeatures(), ", "), "-")},
		{"overrides", or(fieldsText(d.GetOverrides(), false), "-")},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	return tw.Flush()
}

// purgeText is when a pending deletion purges t; "" if none is pending.
func purgeText(t *quartersv1.Tenant) string {
	if t.GetPurgeTime() == nil {
		return ""
	}
	return timeText(t.GetPurgeTime()) + " (deletion pending)"
}

// fieldsText prints m's fields as "name=value" pairs: all of them, or
// only those set.
func fieldsText(m proto.Message, all bool) string {
	if m == nil {
		return ""
	}
	r := m.ProtoReflect()
	var parts []string
	fields := r.Descriptor().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if !all && !r.Has(f) {
			continue
		}
		v := r.Get(f)
		switch {
		case f.IsMap():
			var entries []string
			v.Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
				entries = append(entries, fmt.Sprintf("%s.%s=%v", f.Name(), k.String(), v.Interface()))
				return true
			})
			slices.Sort(entries) // map order is random
			parts = append(parts, entries...)
		default:
			parts = append(parts, fmt.Sprintf("%s=%v", f.Name(), v.Interface()))
		}
	}
	return strings.Join(parts, " ")
}

// statusName is "active" for TENANT_STATUS_ACTIVE.
func statusName(s quartersv1.TenantStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "TENANT_STATUS_"))
}

func timeText(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

// structText prints an audit record's before or after as compact JSON
// (encoding/json, whose output is stable, unlike protojson's).
func structText(s *structpb.Struct) string {
	b, err := json.Marshal(s.AsMap())
	if err != nil {
		return "?"
	}
	return string(b)
}
