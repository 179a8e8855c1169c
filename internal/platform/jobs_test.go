package platform_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/mail"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// downSender is a mail server that refuses every mail.
type downSender struct{}

var errMailDown = errors.New("smtp: 421 service not available")

func (downSender) Send(context.Context, mail.Message) error { return errMailDown }

// retryNow retries a failed job at once.
type retryNow struct{}

func (retryNow) NextRetry(*rivertype.JobRow) time.Time { return time.Now() }

// signUpUnverified creates a tenant, leaving its owner's verification
// mail to the server's sender.
func signUpUnverified(t *testing.T, s *servertest.Server, slug string) *servertest.Tenant {
	t.Helper()
	resp, err := s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{
		Slug: slug, Name: slug, OwnerEmail: "owner@" + slug + ".example", OwnerPassword: servertest.OwnerPassword,
	}))
	require.NoError(t, err)
	return s.As(resp.Msg.GetTenant().GetId(), slug, resp.Msg.GetApiKeySecret())
}

// TestPlatformFailedJobs: a job that fails on every attempt (the sign-up
// mail, with the mail server down) ends among the failed jobs with its
// tenant, attempts and errors; the list pages and filters by tenant;
// RetryJob makes it available again; tenants' credentials are refused.
func TestPlatformFailedJobs(t *testing.T) {
	t.Parallel()
	s := servertest.NewWith(t, &servertest.Opts{Mail: downSender{}, RetryPolicy: retryNow{}})
	events, cancel := s.Jobs.Subscribe(river.EventKindJobFailed)
	defer cancel()
	// Signed up, not verified: the verification mail is what fails.
	a, b := signUpUnverified(t, s, "doomed-a"), signUpUnverified(t, s, "doomed-b")
	discarded := map[string]int64{}
	for len(discarded) < 2 {
		select {
		case e := <-events:
			if e.Job.State == rivertype.JobStateDiscarded {
				discarded[e.Job.Kind+" "+string(e.Job.EncodedArgs)] = e.Job.ID
			}
		case <-time.After(2 * time.Minute):
			t.Fatal("the sign-up mails were not discarded")
		}
	}

	p := s.Platform(t)
	resp, err := p.ListFailedJobs(ctx, req(&quartersv1.ListFailedJobsRequest{TenantId: a.ID}))
	require.NoError(t, err)
	require.Len(t, resp.Msg.GetJobs(), 1)
	require.Empty(t, resp.Msg.GetNextPageToken())
	j := resp.Msg.GetJobs()[0]
	require.Equal(t, "mail", j.GetKind())
	require.Equal(t, a.ID, j.GetTenantId())
	require.Equal(t, quartersv1.JobState_JOB_STATE_DISCARDED, j.GetState())
	require.EqualValues(t, 10, j.GetAttempt())
	require.EqualValues(t, 10, j.GetMaxAttempts())
	require.Len(t, j.GetErrors(), 10)
	for i, e := range j.GetErrors() {
		require.EqualValues(t, i+1, e.GetAttempt())
		require.Contains(t, e.GetError(), errMailDown.Error())
	}
	require.NotNil(t, j.GetFinalizeTime())
	require.False(t, j.GetFinalizeTime().AsTime().Before(j.GetCreateTime().AsTime()))

	// Every tenant's, one per page, the last to fail first.
	var ids []int64
	var tenants []string
	token := ""
	for {
		resp, err := p.ListFailedJobs(ctx, req(&quartersv1.ListFailedJobsRequest{PageSize: 1, PageToken: token}))
		require.NoError(t, err)
		for _, j := range resp.Msg.GetJobs() {
			ids = append(ids, j.GetId())
			tenants = append(tenants, j.GetTenantId())
		}
		if token = resp.Msg.GetNextPageToken(); token == "" {
			break
		}
		require.Len(t, ids, 1, "a token after the first page only")
	}
	require.ElementsMatch(t, []string{a.ID, b.ID}, tenants)
	require.Len(t, ids, 2)
	require.NotEqual(t, ids[0], ids[1])

	// A token is bound to its filter; an unknown tenant has no jobs.
	first, err := p.ListFailedJobs(ctx, req(&quartersv1.ListFailedJobsRequest{PageSize: 1}))
	require.NoError(t, err)
	_, err = p.ListFailedJobs(ctx, req(&quartersv1.ListFailedJobsRequest{TenantId: b.ID, PageToken: first.Msg.GetNextPageToken()}))
	apitest.RequireCode(t, err, connect.CodeInvalidArgument)
	none, err := p.ListFailedJobs(ctx, req(&quartersv1.ListFailedJobsRequest{TenantId: uuid.NewString()}))
	require.NoError(t, err)
	require.Empty(t, none.Msg.GetJobs())

	// Tenants see none of it, and retry nothing.
	tenant := quartersv1connect.NewPlatformServiceClient(s.HTTP, s.URL, connect.WithInterceptors(servertest.Bearer(a.Key)))
	_, err = tenant.ListFailedJobs(ctx, req(&quartersv1.ListFailedJobsRequest{TenantId: a.ID}))
	apitest.RequireCode(t, err, connect.CodePermissionDenied)
	_, err = tenant.RetryJob(ctx, req(&quartersv1.RetryJobRequest{JobId: j.GetId()}))
	apitest.RequireCode(t, err, connect.CodePermissionDenied)

	// RetryJob: available again, with its attempts kept; it then fails
	// once more and is back in the list with one error more.
	retried := make(chan *rivertype.JobRow, 1)
	go func() {
		for e := range events {
			if e.Job.ID == j.GetId() && e.Job.State == rivertype.JobStateDiscarded {
				retried <- e.Job
				return
			}
		}
	}()
	r, err := p.RetryJob(ctx, req(&quartersv1.RetryJobRequest{JobId: j.GetId()}))
	require.NoError(t, err)
	require.Equal(t, j.GetId(), r.Msg.GetJob().GetId())
	require.Equal(t, quartersv1.JobState_JOB_STATE_AVAILABLE, r.Msg.GetJob().GetState())
	require.Nil(t, r.Msg.GetJob().GetFinalizeTime())
	select {
	case row := <-retried:
		require.Equal(t, 11, row.Attempt)
		require.Len(t, row.Errors, 11)
	case <-time.After(time.Minute):
		t.Fatal("the retried job was not worked")
	}

	_, err = p.RetryJob(ctx, req(&quartersv1.RetryJobRequest{JobId: 1 << 40}))
	apitest.RequireCode(t, err, connect.CodeNotFound)
	_, err = p.RetryJob(ctx, req(&quartersv1.RetryJobRequest{JobId: 0}))
	apitest.RequireCode(t, err, connect.CodeInvalidArgument)
}
