package platform

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/riverqueue/river/rivertype"
	"google.golang.org/protobuf/types/known/timestamppb"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/jobs"
	"github.com/quarters-dev/quarters/internal/page"
)

// ListFailedJobs lists the dead letters, the last to fail first, through
// the job client (River's tables hold no tenant's rows and carry no
// row-level security; the tenant filter reads the job's arguments).
func (s *Service) ListFailedJobs(ctx context.Context, req *connect.Request[quartersv1.ListFailedJobsRequest]) (*connect.Response[quartersv1.ListFailedJobsResponse], error) {
	filter := req.Msg.GetTenantId()
	var tenantID uuid.UUID
	if filter != "" {
		tenantID = uuid.MustParse(filter) // protovalidate checked it
	}
	rows, next, err := page.Load(req.Msg, filter, func(c page.Cursor, limit int32) ([]*rivertype.JobRow, error) {
		p := jobs.ListFailedParams{TenantID: tenantID, Limit: int(limit)}
		if c != page.Start {
			p.BeforeTime, p.BeforeID = c.Time, jobFromCursorID(c.ID)
		}
		return s.jobs.ListFailed(ctx, p)
	}, func(j *rivertype.JobRow) page.Cursor {
		return page.Cursor{Time: finalized(j), ID: jobCursorID(j.ID)}
	})
	if err != nil {
		return nil, err
	}
	resp := &quartersv1.ListFailedJobsResponse{NextPageToken: next, Jobs: make([]*quartersv1.Job, len(rows))}
	for i, j := range rows {
		resp.Jobs[i] = jobToProto(j)
	}
	return connect.NewResponse(resp), nil
}

// RetryJob makes a failed job available again.
func (s *Service) RetryJob(ctx context.Context, req *connect.Request[quartersv1.RetryJobRequest]) (*connect.Response[quartersv1.RetryJobResponse], error) {
	j, err := s.jobs.Retry(ctx, req.Msg.GetJobId())
	if errors.Is(err, jobs.ErrNotFailed) {
		return nil, connect.NewError(connect.CodeFailedPrecondition, err)
	}
	if err != nil {
		return nil, err // db.ErrNotFound is mapped to NOT_FOUND in one place
	}
	return connect.NewResponse(&quartersv1.RetryJobResponse{Job: jobToProto(j)}), nil
}

// jobCursorID carries a job's id (a positive int64) in the id half of a
// page.Cursor, so job lists share the page tokens of every other list.
func jobCursorID(id int64) uuid.UUID {
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[8:], uint64(id))
	return u
}

func jobFromCursorID(u uuid.UUID) int64 { return int64(binary.BigEndian.Uint64(u[8:])) }

func finalized(j *rivertype.JobRow) (t time.Time) {
	if j.FinalizedAt != nil {
		return *j.FinalizedAt
	}
	return t
}

var jobStates = map[rivertype.JobState]quartersv1.JobState{
	rivertype.JobStateAvailable: quartersv1.JobState_JOB_STATE_AVAILABLE,
	rivertype.JobStateScheduled: quartersv1.JobState_JOB_STATE_SCHEDULED,
	rivertype.JobStateRunning:   quartersv1.JobState_JOB_STATE_RUNNING,
	rivertype.JobStateRetryable: quartersv1.JobState_JOB_STATE_RETRYABLE,
	rivertype.JobStateCompleted: quartersv1.JobState_JOB_STATE_COMPLETED,
	rivertype.JobStateCancelled: quartersv1.JobState_JOB_STATE_CANCELLED,
	rivertype.JobStateDiscarded: quartersv1.JobState_JOB_STATE_DISCARDED,
	rivertype.JobStatePending:   quartersv1.JobState_JOB_STATE_PENDING,
}

func jobToProto(j *rivertype.JobRow) *quartersv1.Job {
	out := &quartersv1.Job{
		Id:           j.ID,
		Kind:         j.Kind,
		State:        jobStates[j.State],
		Attempt:      int32(j.Attempt),
		MaxAttempts:  int32(j.MaxAttempts),
		CreateTime:   timestamppb.New(j.CreatedAt),
		ScheduleTime: timestamppb.New(j.ScheduledAt),
		Errors:       make([]*quartersv1.JobError, len(j.Errors)),
	}
	if id := jobs.TenantOf(j); id != uuid.Nil {
		out.TenantId = id.String()
	}
	if j.AttemptedAt != nil {
		out.AttemptTime = timestamppb.New(*j.AttemptedAt)
	}
	if j.FinalizedAt != nil {
		out.FinalizeTime = timestamppb.New(*j.FinalizedAt)
	}
	for i, e := range j.Errors {
		// Not e.Trace: a stack trace is the server's, not the operator's.
		out.Errors[i] = &quartersv1.JobError{Attempt: int32(e.Attempt), Error: e.Error, Time: timestamppb.New(e.At)}
	}
	return out
}
