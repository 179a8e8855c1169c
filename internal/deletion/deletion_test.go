package deletion_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db/dbtest"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/apierr"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/deletion"
	"github.com/quarters-dev/quarters/internal/export"
	"github.com/quarters-dev/quarters/internal/notify"
	"github.com/quarters-dev/quarters/internal/redistest"
	"github.com/quarters-dev/quarters/internal/servertest"
	"github.com/quarters-dev/quarters/internal/tenant"
	quarters "github.com/quarters-dev/quarters/sdk/go"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

var ctx = context.Background()

func req[T any](m *T) *connect.Request[T] { return connect.NewRequest(m) }

// requireReason asserts err is PERMISSION_DENIED with the ErrorInfo reason.
func requireReason(t *testing.T, err error, reason quartersv1.ErrorReason) {
	t.Helper()
	apitest.RequireCode(t, err, connect.CodePermissionDenied)
	var ce *connect.Error
	require.True(t, errors.As(err, &ce))
	for _, d := range ce.Details() {
		v, derr := d.Value()
		if derr != nil {
			continue
		}
		if info, ok := v.(interface{ GetReason() string }); ok {
			require.Equal(t, apierr.ReasonOf(reason), info.GetReason(), err.Error())
			return
		}
	}
	t.Fatalf("no ErrorInfo in %v", err)
}

// TestDeleteTenantRefusals: only the tenant's owner deletes it, with its
// slug typed back; an admin or member key, an anonymous caller, another
// tenant's owner (directly or by selecting the first tenant), or a tenant
// credential on the platform's RPC, are refused, and the tenant stays.
func TestDeleteTenantRefusals(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a, b := s.SignUp(t), s.SignUp(t)
	owner, ownerB := s.AsUser(a.Owner), s.AsUser(b.Owner)
	memberKey, err := a.Auth.CreateApiKey(ctx, req(&quartersv1.CreateApiKeyRequest{Name: "m", Role: quartersv1.Role_ROLE_MEMBER}))
	require.NoError(t, err)
	member := s.As(a.ID, a.Slug, memberKey.Msg.GetSecret())

	del := &quartersv1.DeleteTenantRequest{ConfirmSlug: a.Slug}
	_, err = s.As("", "", "").Tenants.DeleteTenant(ctx, req(del))
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)
	_, err = a.Tenants.DeleteTenant(ctx, req(del)) // the sign-up key: an admin's
	apitest.RequireCode(t, err, connect.CodePermissionDenied)
	_, err = member.Tenants.DeleteTenant(ctx, req(del))
	apitest.RequireCode(t, err, connect.CodePermissionDenied)
	_, err = a.Tenants.CancelTenantDeletion(ctx, req(&quartersv1.CancelTenantDeletionRequest{}))
	apitest.RequireCode(t, err, connect.CodePermissionDenied)

	// A wrong slug: invalid_argument naming confirm_slug.
	for _, wrong := range []string{"", b.Slug, strings.ToUpper(a.Slug), a.Slug + "x"} {
		_, err = owner.Tenants.DeleteTenant(ctx, req(&quartersv1.DeleteTenantRequest{ConfirmSlug: wrong}))
		apitest.RequireCode(t, err, connect.CodeInvalidArgument)
		var ce *connect.Error
		require.True(t, errors.As(err, &ce))
		found := false
		for _, d := range ce.Details() {
			if v, derr := d.Value(); derr == nil {
				if vs, ok := v.(*validate.Violations); ok {
					for _, viol := range vs.GetViolations() {
						found = found || viol.GetField().GetElements()[0].GetFieldName() == "confirm_slug"
					}
				}
			}
		}
		require.True(t, found, "violation of confirm_slug for %q: %v", wrong, err)
	}

	// Another tenant's owner: its credential is its own tenant's, so
	// typing A's slug is a wrong slug for B, and selecting A is a
	// mismatch.
	_, err = ownerB.Tenants.DeleteTenant(ctx, req(del))
	apitest.RequireCode(t, err, connect.CodeInvalidArgument)
	selectA := s.AsUser(b.Owner, connect.WithInterceptors(servertest.Header(tenant.HeaderName, a.ID)))
	_, err = selectA.Tenants.DeleteTenant(ctx, req(del))
	requireReason(t, err, quartersv1.ErrorReason_ERROR_REASON_TENANT_MISMATCH)
	_, err = s.As(b.ID, b.Slug, b.Key, connect.WithInterceptors(servertest.Header(tenant.HeaderName, a.Slug))).Tenants.GetTenant(ctx, req(&quartersv1.GetTenantRequest{}))
	requireReason(t, err, quartersv1.ErrorReason_ERROR_REASON_TENANT_MISMATCH)

	// A tenant credential cannot use the operator's RPCs.
	platformAsTenant := quartersv1connect.NewPlatformServiceClient(s.HTTP, s.URL, connect.WithInterceptors(servertest.Bearer(b.Key)))
	_, err = platformAsTenant.DeleteTenant(ctx, req(&quartersv1.PlatformServiceDeleteTenantRequest{TenantId: a.ID}))
	apitest.RequireCode(t, err, connect.CodePermissionDenied)

	// Nothing happened to A: it works, with no purge pending.
	got, err := a.Tenants.GetTenant(ctx, req(&quartersv1.GetTenantRequest{}))
	require.NoError(t, err)
	require.Nil(t, got.Msg.GetTenant().GetPurgeTime())

	// A pending deletion of A cannot be cancelled by B: B's credential
	// cancels B's (none is pending), or is a mismatch.
	_, err = owner.Tenants.DeleteTenant(ctx, req(del))
	require.NoError(t, err)
	_, err = ownerB.Tenants.CancelTenantDeletion(ctx, req(&quartersv1.CancelTenantDeletionRequest{}))
	apitest.RequireCode(t, err, connect.CodeFailedPrecondition)
	_, err = selectA.Tenants.CancelTenantDeletion(ctx, req(&quartersv1.CancelTenantDeletionRequest{}))
	requireReason(t, err, quartersv1.ErrorReason_ERROR_REASON_TENANT_MISMATCH)
	got, err = owner.Tenants.GetTenant(ctx, req(&quartersv1.GetTenantRequest{}))
	require.NoError(t, err)
	require.NotNil(t, got.Msg.GetTenant().GetPurgeTime(), "A's deletion is still pending")
	_, err = b.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err, "B is untouched")
}

// TestDeletionPendingAndCancel: a deletion refuses the tenant's
// credentials at once (API key and access token, on every replica via
// Redis), but for the RPCs marked while_deleting: the owner reads the
// tenant, signs in again, exports, and cancels; cancelling restores
// everything, and deletes the purge job.
func TestDeletionPendingAndCancel(t *testing.T) {
	t.Parallel()
	rs := redistest.New(t)
	s := servertest.NewWith(t, &servertest.Opts{Redis: rs.Options()})
	replica := servertest.NewWith(t, &servertest.Opts{Redis: rs.Options(), Share: s})
	a, b := s.SignUp(t), s.SignUp(t)
	_, err := a.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: "kept"}))
	require.NoError(t, err)
	owner := s.AsUser(a.Owner)
	onReplica := replica.As(a.ID, a.Slug, a.Key)
	_, err = onReplica.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{})) // cached there
	require.NoError(t, err)

	before := time.Now()
	resp, err := owner.Tenants.DeleteTenant(ctx, req(&quartersv1.DeleteTenantRequest{ConfirmSlug: " " + a.Slug + " "}))
	require.NoError(t, err)
	purge := resp.Msg.GetTenant().GetPurgeTime().AsTime()
	require.WithinDuration(t, before.Add(deletion.DefaultGrace), purge, time.Minute)

	// Refused at once, here and on the other replica, with the reason.
	for _, c := range []*servertest.Tenant{a, onReplica, owner} {
		_, err = c.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
		requireReason(t, err, quartersv1.ErrorReason_ERROR_REASON_TENANT_DELETION_PENDING)
	}
	_, err = owner.Tenants.DeleteTenant(ctx, req(&quartersv1.DeleteTenantRequest{ConfirmSlug: a.Slug}))
	requireReason(t, err, quartersv1.ErrorReason_ERROR_REASON_TENANT_DELETION_PENDING)
	at, ok := quarters.TenantDeletionPending(err)
	require.True(t, ok)
	require.True(t, at.Equal(purge.Truncate(time.Second)), "the SDK reads purge_time: %v, want %v", at, purge)
	_, err = b.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err, "another tenant is untouched")

	// What the owner needs still works: the tenant, a fresh sign-in, an
	// export (whose job runs), and the download.
	got, err := owner.Tenants.GetTenant(ctx, req(&quartersv1.GetTenantRequest{}))
	require.NoError(t, err)
	require.True(t, got.Msg.GetTenant().GetPurgeTime().AsTime().Equal(purge))
	again := s.AsUser(s.SignIn(t, a.OwnerEmail, servertest.OwnerPassword, a.Slug))
	events := subscribe(t, []*servertest.Server{s, replica}, river.EventKindJobCompleted)
	started, err := again.Tenants.ExportTenant(ctx, req(&quartersv1.ExportTenantRequest{}))
	require.NoError(t, err)
	waitJob(t, events, export.Args{}.Kind(), river.EventKindJobCompleted)
	ex, err := again.Tenants.GetTenantExport(ctx, req(&quartersv1.GetTenantExportRequest{ExportId: started.Msg.GetExport().GetId()}))
	require.NoError(t, err)
	require.True(t, ex.Msg.GetExport().GetDone())

	// The purge job waits for purge_time.
	jobs := purgeJobs(t, s, a.ID)
	require.Len(t, jobs, 1)
	require.Equal(t, rivertype.JobStateScheduled, jobs[0].state)
	require.WithinDuration(t, purge, jobs[0].scheduled, time.Second)

	_, err = again.Tenants.CancelTenantDeletion(ctx, req(&quartersv1.CancelTenantDeletionRequest{}))
	require.NoError(t, err)
	require.Empty(t, purgeJobs(t, s, a.ID), "cancelling deletes the purge job")
	for _, c := range []*servertest.Tenant{a, onReplica, again} {
		list, err := c.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
		require.NoError(t, err)
		require.Len(t, list.Msg.GetProjects(), 1)
	}
	_, err = again.Tenants.CancelTenantDeletion(ctx, req(&quartersv1.CancelTenantDeletionRequest{}))
	apitest.RequireCode(t, err, connect.CodeFailedPrecondition)

	// The operator: delete (twice: the second leaves the first's
	// schedule), then cancel.
	p := s.Platform(t)
	d1, err := p.DeleteTenant(ctx, req(&quartersv1.PlatformServiceDeleteTenantRequest{TenantId: a.ID}))
	require.NoError(t, err)
	require.NotNil(t, d1.Msg.GetDetails().GetTenant().GetPurgeTime())
	d2, err := p.DeleteTenant(ctx, req(&quartersv1.PlatformServiceDeleteTenantRequest{TenantId: a.ID}))
	require.NoError(t, err)
	require.True(t, d1.Msg.GetDetails().GetTenant().GetPurgeTime().AsTime().Equal(d2.Msg.GetDetails().GetTenant().GetPurgeTime().AsTime()))
	require.Len(t, purgeJobs(t, s, a.ID), 1)
	_, err = a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	requireReason(t, err, quartersv1.ErrorReason_ERROR_REASON_TENANT_DELETION_PENDING)
	_, err = p.CancelTenantDeletion(ctx, req(&quartersv1.PlatformServiceCancelTenantDeletionRequest{TenantId: a.ID}))
	require.NoError(t, err)
	require.Empty(t, purgeJobs(t, s, a.ID))
	_, err = a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
	_, err = p.DeleteTenant(ctx, req(&quartersv1.PlatformServiceDeleteTenantRequest{TenantId: "00000000-0000-4000-8000-000000000000"}))
	apitest.RequireCode(t, err, connect.CodeNotFound)

	// A suspended tenant stays refused as suspended, pending deletion or
	// not, and cancelling gives it back its suspension.
	_, err = p.SuspendTenant(ctx, req(&quartersv1.SuspendTenantRequest{TenantId: a.ID}))
	require.NoError(t, err)
	_, err = p.DeleteTenant(ctx, req(&quartersv1.PlatformServiceDeleteTenantRequest{TenantId: a.ID}))
	require.NoError(t, err)
	_, err = owner.Tenants.GetTenant(ctx, req(&quartersv1.GetTenantRequest{}))
	requireReason(t, err, quartersv1.ErrorReason_ERROR_REASON_TENANT_SUSPENDED)
	_, err = p.CancelTenantDeletion(ctx, req(&quartersv1.PlatformServiceCancelTenantDeletionRequest{TenantId: a.ID}))
	require.NoError(t, err)
	_, err = a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	requireReason(t, err, quartersv1.ErrorReason_ERROR_REASON_TENANT_SUSPENDED)
}

// TestPurge: after the grace period the job deletes every row of the
// tenant from every table (found from the catalog, independently of the
// purge's own discovery), its River jobs, its Redis keys and its
// members' accounts that belonged to it alone; another tenant's rows are
// untouched; the certificate's counts are what was there; the slug is
// free again.
func TestPurge(t *testing.T) {
	t.Parallel()
	rs := redistest.New(t)
	s := servertest.NewWith(t, &servertest.Opts{Redis: rs.Options()})
	a, b := s.SignUp(t), s.SignUp(t)
	for _, c := range []*servertest.Tenant{a, b} {
		p, err := c.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: "p"}))
		require.NoError(t, err)
		_, err = c.Documents.CreateDocument(ctx, req(&quartersv1.CreateDocumentRequest{ProjectId: p.Msg.GetProject().GetId(), Title: "d"}))
		require.NoError(t, err)
		_, err = c.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "invitee@" + c.Slug + ".example", Role: quartersv1.Role_ROLE_MEMBER}))
		require.NoError(t, err)
		_, err = c.Auth.CreateApiKey(ctx, req(&quartersv1.CreateApiKeyRequest{Name: "k", Role: quartersv1.Role_ROLE_MEMBER}))
		require.NoError(t, err)
	}
	require.NoError(t, s.Usage.Flush(ctx))
	owner := s.AsUser(a.Owner)
	events, cancel := s.Jobs.Subscribe(river.EventKindJobCompleted)
	defer cancel()
	started, err := owner.Tenants.ExportTenant(ctx, req(&quartersv1.ExportTenantRequest{}))
	require.NoError(t, err)
	waitJob(t, events, export.Args{}.Kind(), river.EventKindJobCompleted)
	ex, err := owner.Tenants.GetTenantExport(ctx, req(&quartersv1.GetTenantExportRequest{ExportId: started.Msg.GetExport().GetId()}))
	require.NoError(t, err)

	// Keys under prefixes nobody in Quarters uses go too: the sweep
	// looks for the tenant's id, not a list of prefixes.
	rc := rs.Client()
	t.Cleanup(func() { _ = rc.Close() })
	require.NoError(t, rc.Set(ctx, "someday:"+a.ID+":x", "1", 0).Err())
	require.NoError(t, rc.Set(ctx, "someday:"+b.ID+":x", "1", 0).Err())

	resp, err := owner.Tenants.DeleteTenant(ctx, req(&quartersv1.DeleteTenantRequest{ConfirmSlug: a.Slug}))
	require.NoError(t, err)
	// Counted once nothing changes any more: the calls are counted and
	// flushed, and the tenant refuses every other call.
	require.NoError(t, s.Usage.Flush(ctx))
	conn := ownerConn(t, s)
	beforeA, beforeB := tenantRows(t, conn, a.ID), tenantRows(t, conn, b.ID)
	for _, table := range []string{"public.projects", "public.documents", "public.api_keys", "public.memberships",
		"public.invitations", "public.tenant_exports", "public.usage_daily", "public.tenants", "river_job"} {
		require.Positive(t, beforeA[table], table)
	}
	keysA := redisKeys(t, rs, a.ID)
	require.Contains(t, keysA, "someday:"+a.ID+":x")
	require.Greater(t, len(keysA), 1, "the tenant cache's and rate limiter's keys: %v", keysA)

	// The grace period ends now (the test's one shortcut: the job and
	// purge_time move to now, together), and the job runs.
	_, err = conn.Exec(ctx, "update tenants set purge_time = now() where id = $1", a.ID)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "update river_job set scheduled_at = now() where kind = $1 and args->>'tenant_id' = $2", deletion.Args{}.Kind(), a.ID)
	require.NoError(t, err)
	waitJob(t, events, deletion.Args{}.Kind(), river.EventKindJobCompleted)

	for table, n := range tenantRows(t, conn, a.ID) {
		require.Zero(t, n, "%s still holds rows of the deleted tenant", table)
	}
	require.Equal(t, beforeB, tenantRows(t, conn, b.ID), "the other tenant's rows are as they were")
	var users int
	require.NoError(t, conn.QueryRow(ctx, "select count(*) from users where lower(email) = lower($1)", a.OwnerEmail).Scan(&users))
	require.Zero(t, users, "the owner belonged to the deleted tenant alone")
	require.NoError(t, conn.QueryRow(ctx, "select count(*) from users where lower(email) = lower($1)", b.OwnerEmail).Scan(&users))
	require.Equal(t, 1, users)
	require.Empty(t, redisKeys(t, rs, a.ID), "no Redis key names the deleted tenant")
	require.Contains(t, redisKeys(t, rs, b.ID), "someday:"+b.ID+":x", "the other tenant's keys stay")

	// The certificate: what was there, nothing after.
	cert, err := s.Platform(t).GetDeletionCertificate(ctx, req(&quartersv1.GetDeletionCertificateRequest{TenantId: a.ID}))
	require.NoError(t, err)
	c := cert.Msg.GetCertificate()
	require.Equal(t, a.Slug, c.GetSlug())
	require.Equal(t, "owner:"+a.Owner.GetUser().GetId(), c.GetRequestedBy())
	require.Equal(t, ex.Msg.GetExport().GetSha256(), c.GetExportSha256())
	require.True(t, c.GetScheduledTime().AsTime().Before(resp.Msg.GetTenant().GetPurgeTime().AsTime()), "due early, by the shortcut")
	require.False(t, c.GetPurgeTime().AsTime().Before(c.GetScheduledTime().AsTime()))
	require.False(t, c.GetRequestTime().AsTime().After(c.GetScheduledTime().AsTime()))
	counted := map[string]int64{}
	for _, tb := range c.GetTables() {
		require.Zero(t, tb.GetRowsAfter(), tb.GetName())
		counted[tb.GetName()] = tb.GetRowsBefore()
	}
	require.EqualValues(t, 1, counted["public.users"])
	delete(counted, "public.users")
	require.Equal(t, beforeA, counted, "the certificate counts every table the catalog lists")
	_, err = s.Platform(t).GetDeletionCertificate(ctx, req(&quartersv1.GetDeletionCertificateRequest{TenantId: b.ID}))
	apitest.RequireCode(t, err, connect.CodeNotFound)

	// The credentials are dead, the slug is free, B works.
	_, err = a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)
	_, err = s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{Slug: a.Slug, Name: "New", OwnerEmail: "new@" + a.Slug + ".example"}))
	require.NoError(t, err, "the slug is free after the purge")
	list, err := b.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
	require.Len(t, list.Msg.GetProjects(), 1)
}

// TestPurgeFailureRollsBack: a purge that fails part-way (PostgreSQL
// refuses to delete the projects, after the documents went) leaves every
// row in place and no certificate, and River tries again; once the cause
// is gone, the retry purges everything.
func TestPurgeFailureRollsBack(t *testing.T) {
	t.Parallel()
	s := servertest.NewWith(t, &servertest.Opts{DeletionGrace: time.Second, RetryPolicy: retryNow{}})
	a := s.SignUp(t)
	p, err := a.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: "p"}))
	require.NoError(t, err)
	_, err = a.Documents.CreateDocument(ctx, req(&quartersv1.CreateDocumentRequest{ProjectId: p.Msg.GetProject().GetId(), Title: "d"}))
	require.NoError(t, err)
	conn := ownerConn(t, s)
	_, err = conn.Exec(ctx, `
create function refuse_delete() returns trigger language plpgsql as $$
begin raise exception 'refused by the test'; end $$;
create trigger refuse_delete before delete on projects for each row execute function refuse_delete();`)
	require.NoError(t, err)

	events, cancel := s.Jobs.Subscribe(river.EventKindJobFailed, river.EventKindJobCompleted)
	defer cancel()
	_, err = s.AsUser(a.Owner).Tenants.DeleteTenant(ctx, req(&quartersv1.DeleteTenantRequest{ConfirmSlug: a.Slug}))
	require.NoError(t, err)
	// Whenever the purge runs, it cannot delete anything: this is what
	// every attempt must leave.
	require.NoError(t, s.Usage.Flush(ctx))
	before := tenantRows(t, conn, a.ID)
	require.EqualValues(t, 1, before["public.documents"])
	e := waitJob(t, events, deletion.Args{}.Kind(), river.EventKindJobFailed)
	require.Contains(t, e.Job.Errors[len(e.Job.Errors)-1].Error, "refused by the test")
	require.Equal(t, before, tenantRows(t, conn, a.ID), "nothing is half-deleted")
	_, err = s.Platform(t).GetDeletionCertificate(ctx, req(&quartersv1.GetDeletionCertificateRequest{TenantId: a.ID}))
	apitest.RequireCode(t, err, connect.CodeNotFound)

	_, err = conn.Exec(ctx, "drop trigger refuse_delete on projects")
	require.NoError(t, err)
	waitJob(t, events, deletion.Args{}.Kind(), river.EventKindJobCompleted)
	for table, n := range tenantRows(t, conn, a.ID) {
		require.Zero(t, n, table)
	}
	_, err = s.Platform(t).GetDeletionCertificate(ctx, req(&quartersv1.GetDeletionCertificateRequest{TenantId: a.ID}))
	require.NoError(t, err)
}

// retryNow retries a failed job at once.
type retryNow struct{}

func (retryNow) NextRetry(*rivertype.JobRow) time.Time { return time.Now() }

// subscribe fans in the events of every server's job client: a job may
// be worked by any replica.
func subscribe(t *testing.T, servers []*servertest.Server, kinds ...river.EventKind) <-chan *river.Event {
	out := make(chan *river.Event, 100)
	for _, s := range servers {
		events, cancel := s.Jobs.Subscribe(kinds...)
		t.Cleanup(cancel)
		go func() {
			for e := range events {
				out <- e
			}
		}()
	}
	return out
}

// waitJob waits for an event of kind about a job of jobKind.
func waitJob(t *testing.T, events <-chan *river.Event, jobKind string, kind river.EventKind) *river.Event {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case e := <-events:
			if e.Job.Kind == jobKind && e.Kind == kind {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event for a %s job", kind, jobKind)
		}
	}
}

// ownerConn connects as the database's owner (the test cluster's
// superuser: row-level security does not hide anything from it).
func ownerConn(t *testing.T, s *servertest.Server) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, s.OwnerURL)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// tenantRows counts the tenant's rows in every table of every schema
// with a tenant_id column, read from the catalog here (not the purge's
// list), plus its tenants row and the River jobs whose arguments mention
// it anywhere (but the purge job itself, which names the tenant it
// purged until River's cleaner removes it).
func tenantRows(t *testing.T, conn *pgx.Conn, id string) map[string]int64 {
	t.Helper()
	rows, err := conn.Query(ctx, `
SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(tables), 13)
	out := map[string]int64{}
	for _, tb := range tables {
		var n int64
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM "+tb+" WHERE tenant_id = $1", id).Scan(&n))
		if !strings.Contains(tb, ".") {
			tb = "public." + tb
		}
		out[tb] = n
	}
	var n int64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM tenants WHERE id = $1", id).Scan(&n))
	out["public.tenants"] = n
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE args::text LIKE '%' || $1 || '%' AND kind <> $2",
		id, deletion.Args{}.Kind()).Scan(&n))
	out["river_job"] = n
	return out
}

type purgeJob struct {
	state     rivertype.JobState
	scheduled time.Time
}

// purgeJobs lists the tenant's purge jobs.
func purgeJobs(t *testing.T, s *servertest.Server, id string) []purgeJob {
	t.Helper()
	conn := ownerConn(t, s)
	rows, err := conn.Query(ctx, "SELECT state::text, scheduled_at FROM river_job WHERE kind = $1 AND args->>'tenant_id' = $2",
		deletion.Args{}.Kind(), id)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (purgeJob, error) {
		var j purgeJob
		var st string
		err := r.Scan(&st, &j.scheduled)
		j.state = rivertype.JobState(st)
		return j, err
	})
	require.NoError(t, err)
	return out
}

// redisKeys are the keys of rs whose name contains id, sorted.
func redisKeys(t *testing.T, rs *redistest.Server, id string) []string {
	t.Helper()
	c := rs.Client()
	defer c.Close()
	keys, err := c.Keys(ctx, "*").Result()
	require.NoError(t, err)
	var out []string
	for _, k := range keys {
		if strings.Contains(k, id) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// TestDeletionNoticeToManagers: a deletion request mails every owner and
// admin of the tenant once, with the purge time and how to cancel (so a
// deletion made with a stolen owner credential is noticed within the
// grace period); a plain member and another tenant's owner get nothing,
// and a refused request (the wrong slug) sends nothing.
func TestDeletionNoticeToManagers(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a, b := s.SignUp(t), s.SignUp(t)
	admin := "admin@notice-" + a.Slug + ".example"
	member := "member@notice-" + a.Slug + ".example"
	apitest.Join(t, s, a, admin, quartersv1.Role_ROLE_ADMIN)
	apitest.Join(t, s, a, member, quartersv1.Role_ROLE_MEMBER)
	owner := s.AsUser(a.Owner)

	_, err := owner.Tenants.DeleteTenant(ctx, req(&quartersv1.DeleteTenantRequest{ConfirmSlug: b.Slug}))
	apitest.RequireCode(t, err, connect.CodeInvalidArgument)
	resp, err := owner.Tenants.DeleteTenant(ctx, req(&quartersv1.DeleteTenantRequest{ConfirmSlug: a.Slug}))
	require.NoError(t, err)
	purge := resp.Msg.GetTenant().GetPurgeTime().AsTime().UTC().Format("2006-01-02 15:04 UTC")
	for _, to := range []string{a.OwnerEmail, admin} {
		m, _ := s.Mailbox.Wait(t, to, notify.SubjectDeletionScheduled)
		require.Contains(t, m.Text, a.Slug, to)
		require.Contains(t, m.Text, purge, to)
		require.Contains(t, m.Text, "CancelTenantDeletion", to)
	}
	// Every mail job settled: then count what went where.
	conn, err := pgx.Connect(ctx, s.OwnerURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx) })
	require.Eventually(t, func() bool {
		var pending int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'mail'
			AND state NOT IN ('completed', 'cancelled', 'discarded')`).Scan(&pending))
		return pending == 0
	}, 30*time.Second, 100*time.Millisecond)
	var jobs int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'mail'
		AND args->>'template' = $1 AND args->>'tenant_id' = $2`, notify.TemplateDeletionScheduled, a.ID).Scan(&jobs))
	require.Equal(t, 2, jobs, "one per owner or admin, none for the refused request")
	notices := func(to string) int { return s.Mailbox.Count(to, notify.SubjectDeletionScheduled) }
	require.Equal(t, 1, notices(a.OwnerEmail))
	require.Equal(t, 1, notices(admin))
	require.Zero(t, notices(member), "a member does not manage the tenant")
	require.Zero(t, notices(b.OwnerEmail), "another tenant's owner")
}
