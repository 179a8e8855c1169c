package member_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/notify"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// TestSuspendedTenantMailDropped: an invitation mail whose tenant was
// suspended before delivery is cancelled at its first attempt, sends
// nothing, and leaves the invitation's earlier link working.
func TestSuspendedTenantMailDropped(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	inv, _ := apitest.InviteFull(t, s.AsUser(a.Owner), "late@example.com", quartersv1.Role_ROLE_MEMBER)
	require.Len(t, s.Mailbox.Sent("late@example.com"), 1)

	hashBefore := tokenHash(t, s, inv.GetId())
	_, err := s.Platform(t).SuspendTenant(ctx, req(&quartersv1.SuspendTenantRequest{TenantId: a.ID}))
	require.NoError(t, err)
	events, cancel := s.Jobs.Subscribe(river.EventKindJobCancelled, river.EventKindJobCompleted, river.EventKindJobFailed)
	defer cancel()
	// The job a resend would enqueue, worked while the tenant is suspended.
	before := time.Now().Add(-time.Millisecond)
	require.NoError(t, s.Jobs.Insert(ctx, notify.Invitation(uuid.MustParse(a.ID), uuid.MustParse(inv.GetId()))))
	for done := false; !done; {
		select {
		case e := <-events:
			if e.Job.CreatedAt.Before(before) {
				continue // the first mail's job, finishing
			}
			require.Equal(t, river.EventKindJobCancelled, e.Kind)
			require.Equal(t, rivertype.JobStateCancelled, e.Job.State)
			require.Equal(t, 1, e.Job.Attempt)
			require.Contains(t, e.Job.Errors[0].Error, "suspended")
			done = true
		case <-time.After(time.Minute):
			t.Fatal("the mail job did not end")
		}
	}
	require.Len(t, s.Mailbox.Sent("late@example.com"), 1, "nothing more was sent")
	require.Equal(t, hashBefore, tokenHash(t, s, inv.GetId()), "the mailed link was not replaced")
}

func tokenHash(t *testing.T, s *servertest.Server, id string) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, s.OwnerURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var h string
	require.NoError(t, conn.QueryRow(ctx, "select encode(token_hash, 'hex') from invitations where id = $1", id).Scan(&h))
	require.NotEmpty(t, h)
	return h
}
