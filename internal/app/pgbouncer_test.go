package app_test

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db/dbtest"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/export"
	"github.com/quarters-dev/quarters/internal/notify"
	"github.com/quarters-dev/quarters/internal/servertest"
	"github.com/quarters-dev/quarters/internal/tenancy"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

var ctx = context.Background()

func req[T any](m *T) *connect.Request[T] { return connect.NewRequest(m) }

// TestPgBouncerServer: the whole server behind PgBouncer 1.18 in
// transaction mode, configured as QUARTERS_DB_POOLER=transaction
// configures it: tenant API calls work and keep tenants apart, and
// background jobs, polled for instead of notified, run to completion
// (mails enqueued in a sign-up's transaction and on their own, an
// export).
func TestPgBouncerServer(t *testing.T) {
	t.Parallel()
	s := servertest.NewWith(t, &servertest.Opts{PgBouncer: true, JobPollInterval: 100 * time.Millisecond})
	require.True(t, s.DB.TransactionPooling())
	// Sign-up's verification mail is a job: SignUp waits for it.
	a, b := s.SignUp(t), s.SignUp(t)

	p, err := a.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: "a's"}))
	require.NoError(t, err)
	_, err = b.Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: p.Msg.GetProject().GetId()}))
	apitest.RequireCode(t, err, connect.CodeNotFound)
	got, err := a.Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: p.Msg.GetProject().GetId()}))
	require.NoError(t, err)
	require.Equal(t, "a's", got.Msg.GetProject().GetName())
	bl, err := b.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
	require.Empty(t, bl.Msg.GetProjects())

	// A job enqueued outside any transaction of the caller's (Insert).
	_, err = s.As("", "", "").Auth.RequestPasswordReset(ctx, req(&quartersv1.RequestPasswordResetRequest{Email: a.OwnerEmail}))
	require.NoError(t, err)
	_, token := s.Mailbox.Wait(t, a.OwnerEmail, notify.SubjectReset)
	require.NotEmpty(t, token)

	// An export: a job that reads every table of the tenant.
	events, cancel := s.Jobs.Subscribe(river.EventKindJobCompleted)
	defer cancel()
	owner := s.AsUser(a.Owner)
	started, err := owner.Tenants.ExportTenant(ctx, req(&quartersv1.ExportTenantRequest{}))
	require.NoError(t, err)
	for done := false; !done; {
		select {
		case e := <-events:
			done = e.Job.Kind == export.Args{}.Kind()
		case <-time.After(time.Minute):
			t.Fatal("the export job did not complete behind PgBouncer")
		}
	}
	e, err := owner.Tenants.GetTenantExport(ctx, req(&quartersv1.GetTenantExportRequest{ExportId: started.Msg.GetExport().GetId()}))
	require.NoError(t, err)
	require.True(t, e.Msg.GetExport().GetDone())
	rows := map[string]int64{}
	for _, tb := range e.Msg.GetExport().GetTables() {
		rows[tb.GetName()] = tb.GetRows()
	}
	require.EqualValues(t, 1, rows["projects"], "a's project only")
}

// soakTransactions is how many transactions TestPgBouncerSoak runs:
// QUARTERS_TEST_PGBOUNCER_TX, else a count that keeps the suite's -race
// run short (CI runs 1,000,000 without -race in a step of its own).
func soakTransactions(t *testing.T) int64 {
	v := os.Getenv("QUARTERS_TEST_PGBOUNCER_TX")
	if v == "" {
		return 20_000
	}
	n, err := strconv.ParseInt(v, 10, 64)
	require.NoError(t, err, "QUARTERS_TEST_PGBOUNCER_TX")
	require.Positive(t, n, "QUARTERS_TEST_PGBOUNCER_TX")
	return n
}

// TestPgBouncerSoak: tenant isolation under load behind PgBouncer in
// transaction mode. 20 tenants' transactions run through the server's own
// db.InTenant (its pool, through PgBouncer, with fewer server connections
// than clients), each reading the tenant's projects and checking every
// row is the tenant's and none is missing; meanwhile API calls as random
// tenants check the same over HTTP, and a client outside any tenant
// checks that no transaction's tenant or statement_timeout ever reaches
// it. Zero wrong rows, zero missing rows, zero leaks.
func TestPgBouncerSoak(t *testing.T) {
	t.Parallel()
	n := soakTransactions(t)
	s := servertest.NewWith(t, &servertest.Opts{PgBouncer: true, JobPollInterval: 100 * time.Millisecond})

	const tenants, projects = 20, 3
	type soakTenant struct {
		api      *servertest.Tenant
		rec      tenancy.Tenant
		projects map[string]bool
	}
	ts := make([]*soakTenant, tenants)
	for i := range ts {
		api := s.SignUp(t)
		// Enterprise: no monthly call quota to run out of, and a
		// statement_timeout (15s) that must not leak.
		s.SetPlan(t, api.ID, "enterprise")
		s.Unthrottle(t, api.ID)
		st := &soakTenant{api: api, projects: map[string]bool{}}
		for j := range projects {
			p, err := api.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: "p" + strconv.Itoa(j)}))
			require.NoError(t, err)
			st.projects[p.Msg.GetProject().GetId()] = true
		}
		rec, err := s.Tenants.Get(ctx, uuid.MustParse(api.ID))
		require.NoError(t, err)
		require.Equal(t, 15*time.Second, rec.Limits.StatementTimeout)
		st.rec = rec
		ts[i] = st
	}

	var (
		next, wrong, missing, failed atomic.Int64
		apiCalls, apiWrong, leaks    atomic.Int64
		probes                       atomic.Int64
		firstErr                     error
		errOnce                      sync.Once
	)
	fail := func(err error) {
		failed.Add(1)
		errOnce.Do(func() { firstErr = err })
	}
	start := time.Now()
	stop := make(chan struct{})
	var side sync.WaitGroup
	// API calls, concurrently with the transactions.
	for range 2 {
		side.Add(1)
		go func() {
			defer side.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				me, other := ts[rand.IntN(tenants)], ts[rand.IntN(tenants)]
				l, err := me.api.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
				if err != nil {
					fail(err)
					continue
				}
				apiCalls.Add(1)
				if len(l.Msg.GetProjects()) != projects {
					apiWrong.Add(1)
				}
				for _, p := range l.Msg.GetProjects() {
					if !me.projects[p.GetId()] {
						apiWrong.Add(1)
					}
				}
				if other != me {
					for id := range other.projects {
						_, err := me.api.Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: id}))
						if connect.CodeOf(err) != connect.CodeNotFound {
							apiWrong.Add(1)
						}
						apiCalls.Add(1)
						break
					}
				}
			}
		}()
	}
	// A client in no tenant, on whichever server connection PgBouncer
	// hands it: it must never see a tenant, a plan's timeout or a row.
	probe, err := pgx.Connect(ctx, s.DB.Pool().Config().ConnString()+"&default_query_exec_mode=simple_protocol")
	require.NoError(t, err)
	defer probe.Close(ctx)
	side.Add(1)
	go func() {
		defer side.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			var tenant, timeout string
			var rows int
			err := probe.QueryRow(ctx, `select coalesce(current_setting('app.tenant_id', true), ''),
				current_setting('statement_timeout'), (select count(*) from projects)`).Scan(&tenant, &timeout, &rows)
			if err != nil {
				fail(err)
				return
			}
			probes.Add(1)
			if tenant != "" || timeout != "0" || rows != 0 {
				leaks.Add(1)
			}
		}
	}()

	var work sync.WaitGroup
	for range 16 {
		work.Add(1)
		go func() {
			defer work.Done()
			for {
				i := next.Add(1)
				if i > n {
					return
				}
				st := ts[i%tenants]
				id := st.rec.ID
				tctx := tenancy.NewContext(ctx, st.rec)
				err := s.DB.InTenant(tctx, func(q *dbsqlc.Queries) error {
					ps, err := q.ProjectList(tctx, dbsqlc.ProjectListParams{
						TenantID: id, BeforeTime: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), BeforeID: uuid.Max, PageLimit: 100,
					})
					if err != nil {
						return err
					}
					// The explicit filter names the tenant; row-level
					// security admits the transaction's tenant. Another
					// tenant's row, or a transaction acting for anyone
					// else (no rows), shows here.
					own := 0
					for _, p := range ps {
						if p.TenantID != id || !st.projects[p.ID.String()] {
							wrong.Add(1)
						} else {
							own++
						}
					}
					missing.Add(int64(projects - own))
					return nil
				})
				if err != nil {
					fail(err)
				}
			}
		}()
	}
	work.Wait()
	elapsed := time.Since(start)
	close(stop)
	side.Wait()

	t.Logf("PgBouncer soak: %d transactions from %d tenants in %s (%.0f/s); wrong-tenant rows %d, missing rows %d, errors %d; "+
		"%d concurrent API calls (%d wrong); %d leak probes (%d leaks)",
		n, tenants, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), wrong.Load(), missing.Load(), failed.Load(),
		apiCalls.Load(), apiWrong.Load(), probes.Load(), leaks.Load())
	require.NoError(t, firstErr)
	require.Zero(t, failed.Load(), "failed transactions or calls")
	require.Zero(t, wrong.Load(), "rows of another tenant")
	require.Zero(t, missing.Load(), "rows of the tenant missing")
	require.Positive(t, apiCalls.Load(), "API calls ran alongside")
	require.Zero(t, apiWrong.Load(), "API answers with another tenant's rows, or missing its own")
	require.Positive(t, probes.Load(), "leak probes ran alongside")
	require.Zero(t, leaks.Load(), "a transaction's settings reached a client outside it")
}
