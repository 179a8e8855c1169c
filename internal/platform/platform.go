// Package platform implements quarters.v1.PlatformService: the operator's
// administration of tenants (plan, overrides, suspension) and the audit
// trail of it. Its RPCs admit only the platform credential; the access
// interceptor enforces that from the contract.
//
// DeleteTenant and CancelTenantDeletion schedule and cancel a tenant's
// deletion as its owner can (package deletion); GetDeletionCertificate
// reads what a purge leaves, which outlives the tenant.
//
// Every change to a tenant runs in one transaction acting as that tenant
// (db.ActAs, so row-level security still applies): lock the tenant's row,
// read the state before, apply, read the state after, append the audit
// record. Only then, after the commit, is the cached tenant record
// invalidated on every replica, and the tenant's effective record read back
// for the response. A call that fails changes nothing and leaves no audit
// record; a call that leaves the tenant as it was (suspending a suspended
// tenant) succeeds and is audited, with equal before and after, so the
// trail shows every change the operator asked for.
package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/jobs"
	"github.com/quarters-dev/quarters/internal/metering"
	"github.com/quarters-dev/quarters/internal/page"
	"github.com/quarters-dev/quarters/internal/protoconv"
	"github.com/quarters-dev/quarters/internal/tenant"
)

// Actor is the audit records' actor for changes made with the platform
// credential.
const Actor = "platform"

// Service implements quartersv1connect.PlatformServiceHandler. Requests
// arrive authenticated as the platform and validated; there is no tenant
// in the context, each RPC names one.
type Service struct {
	db    *db.DB
	cache *tenant.Cache
	jobs  *jobs.Client
	cost  *metering.Cost
	// Logger receives failures the caller only learns about in brief
	// (a failed cache invalidation); New sets slog.Default().
	Logger *slog.Logger
	// DeletionGrace is how long a tenant DeleteTenant deletes waits for
	// its purge; zero is deletion.DefaultGrace.
	DeletionGrace time.Duration
}

var _ quartersv1connect.PlatformServiceHandler = (*Service)(nil)

// New returns the service. cache must be the cache the tenant interceptor
// reads, so a change is seen by the tenant's next call; jc is the job
// client whose failed jobs the operator lists and retries; c's unflushed
// costs are written before each cost report.
func New(d *db.DB, cache *tenant.Cache, jc *jobs.Client, c *metering.Cost) *Service {
	return &Service{db: d, cache: cache, jobs: jc, cost: c, Logger: slog.Default()}
}

// ListTenants lists tenants, newest first, optionally by status and plan.
func (s *Service) ListTenants(ctx context.Context, req *connect.Request[quartersv1.ListTenantsRequest]) (*connect.Response[quartersv1.ListTenantsResponse], error) {
	status := statusName(req.Msg.GetStatus())
	var filters []string
	if status != "" {
		filters = append(filters, "status="+status)
	}
	if p := req.Msg.GetPlan(); p != "" {
		filters = append(filters, "plan="+p)
	}
	filter := strings.Join(filters, ";")
	rows, next, err := page.Load(req.Msg, filter, func(c page.Cursor, limit int32) ([]dbsqlc.Tenant, error) {
		return s.db.PlatformTenantList(ctx, db.PlatformTenantListParams{
			Status: status, Plan: req.Msg.GetPlan(), BeforeTime: c.Time, BeforeID: c.ID, Limit: limit,
		})
	}, func(t dbsqlc.Tenant) page.Cursor { return page.Cursor{Time: t.CreateTime, ID: t.ID} })
	if err != nil {
		return nil, err
	}
	resp := &quartersv1.ListTenantsResponse{NextPageToken: next, Tenants: make([]*quartersv1.Tenant, len(rows))}
	for i, r := range rows {
		resp.Tenants[i] = protoconv.Tenant(r)
	}
	return connect.NewResponse(resp), nil
}

// GetTenant returns the tenant with its effective limits and features and
// its overrides; NOT_FOUND if there is no such tenant.
func (s *Service) GetTenant(ctx context.Context, req *connect.Request[quartersv1.PlatformServiceGetTenantRequest]) (*connect.Response[quartersv1.PlatformServiceGetTenantResponse], error) {
	id := uuid.MustParse(req.Msg.GetTenantId())
	var st state
	err := s.db.ActAs(ctx, id, func(q *dbsqlc.Queries) error {
		var err error
		st, err = readState(ctx, q, id, q.TenantGet)
		return err
	})
	if err != nil {
		return nil, err
	}
	d, err := s.details(ctx, st)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.PlatformServiceGetTenantResponse{Details: d}), nil
}

// SetPlan moves the tenant to another plan. An unknown plan is NOT_FOUND
// (the fk_plan constraint, mapped by package observe).
func (s *Service) SetPlan(ctx context.Context, req *connect.Request[quartersv1.SetPlanRequest]) (*connect.Response[quartersv1.SetPlanResponse], error) {
	plan := req.Msg.GetPlan()
	d, ev, err := s.change(ctx, uuid.MustParse(req.Msg.GetTenantId()), change{
		action: "SetPlan",
		fields: func(st state) any { return map[string]string{"plan": st.tenant.Plan} },
		apply: func(ctx context.Context, q *dbsqlc.Queries, st state) (state, error) {
			if st.tenant.Plan == plan {
				return st, nil
			}
			t, err := q.TenantSetPlan(ctx, dbsqlc.TenantSetPlanParams{ID: st.tenant.ID, Plan: plan})
			if err != nil {
				return st, fmt.Errorf("set plan: %w", err)
			}
			st.tenant = t
			return st, nil
		},
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.SetPlanResponse{Details: d, AuditEvent: ev}), nil
}

// SetOverrides sets each override named in the update mask to its value
// in the request, or clears it when the request leaves it unset.
// "features" replaces the whole map of feature overrides.
func (s *Service) SetOverrides(ctx context.Context, req *connect.Request[quartersv1.SetOverridesRequest]) (*connect.Response[quartersv1.SetOverridesResponse], error) {
	in, paths := req.Msg.GetOverrides(), req.Msg.GetUpdateMask().GetPaths()
	if in == nil {
		in = &quartersv1.TenantOverrides{}
	}
	d, ev, err := s.change(ctx, uuid.MustParse(req.Msg.GetTenantId()), change{
		action: "SetOverrides",
		fields: func(st state) any { return st.overrides },
		apply: func(ctx context.Context, q *dbsqlc.Queries, st state) (state, error) {
			o := st.overrides.clone()
			for _, p := range paths {
				switch p {
				case "requests_per_minute":
					o.RequestsPerMinute = clone(in.RequestsPerMinute)
				case "burst":
					o.Burst = clone(in.Burst)
				case "max_projects":
					o.MaxProjects = clone(in.MaxProjects)
				case "max_members":
					o.MaxMembers = clone(in.MaxMembers)
				case "max_api_calls_per_month":
					o.MaxAPICallsPerMonth = clone(in.MaxApiCallsPerMonth)
				case "statement_timeout_ms":
					o.StatementTimeoutMs = clone(in.StatementTimeoutMs)
				case "features":
					o.Features = maps.Clone(in.GetFeatures())
					if o.Features == nil {
						o.Features = map[string]bool{}
					}
				}
			}
			features, err := json.Marshal(o.Features)
			if err != nil {
				return st, fmt.Errorf("encode feature overrides: %w", err)
			}
			row, err := q.TenantOverrideUpsert(ctx, dbsqlc.TenantOverrideUpsertParams{
				TenantID: st.tenant.ID,
				// protovalidate bounds these well inside int32.
				RequestsPerMinute:   narrow(o.RequestsPerMinute),
				Burst:               narrow(o.Burst),
				MaxProjects:         narrow(o.MaxProjects),
				MaxMembers:          narrow(o.MaxMembers),
				MaxApiCallsPerMonth: clone(o.MaxAPICallsPerMonth),
				StatementTimeoutMs:  narrow(o.StatementTimeoutMs),
				Features:            features,
			})
			if err != nil {
				return st, fmt.Errorf("set overrides: %w", err)
			}
			st.overrides, err = overridesFromRow(row)
			return st, err
		},
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.SetOverridesResponse{Details: d, AuditEvent: ev}), nil
}

// SuspendTenant suspends the tenant; suspending a suspended one succeeds.
func (s *Service) SuspendTenant(ctx context.Context, req *connect.Request[quartersv1.SuspendTenantRequest]) (*connect.Response[quartersv1.SuspendTenantResponse], error) {
	d, ev, err := s.change(ctx, uuid.MustParse(req.Msg.GetTenantId()), setStatus("SuspendTenant", statusSuspended))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.SuspendTenantResponse{Details: d, AuditEvent: ev}), nil
}

// ResumeTenant makes the tenant active; resuming an active one succeeds.
func (s *Service) ResumeTenant(ctx context.Context, req *connect.Request[quartersv1.ResumeTenantRequest]) (*connect.Response[quartersv1.ResumeTenantResponse], error) {
	d, ev, err := s.change(ctx, uuid.MustParse(req.Msg.GetTenantId()), setStatus("ResumeTenant", statusActive))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.ResumeTenantResponse{Details: d, AuditEvent: ev}), nil
}

// ListAuditEvents lists audit events newest first: one tenant's, read as
// that tenant under row-level security, or every tenant's through the
// platform lookup.
func (s *Service) ListAuditEvents(ctx context.Context, req *connect.Request[quartersv1.ListAuditEventsRequest]) (*connect.Response[quartersv1.ListAuditEventsResponse], error) {
	filter := req.Msg.GetTenantId()
	rows, next, err := page.Load(req.Msg, filter, func(c page.Cursor, limit int32) (rows []dbsqlc.AuditEvent, err error) {
		if filter == "" {
			return s.db.PlatformAuditEventList(ctx, db.PlatformAuditEventListParams{BeforeTime: c.Time, BeforeID: c.ID, Limit: limit})
		}
		id := uuid.MustParse(filter)
		err = s.db.ActAs(ctx, id, func(q *dbsqlc.Queries) error {
			rows, err = q.AuditEventList(ctx, dbsqlc.AuditEventListParams{TenantID: id, BeforeTime: c.Time, BeforeID: c.ID, PageLimit: limit})
			return err
		})
		return rows, err
	}, func(e dbsqlc.AuditEvent) page.Cursor { return page.Cursor{Time: e.CreateTime, ID: e.ID} })
	if err != nil {
		return nil, err
	}
	resp := &quartersv1.ListAuditEventsResponse{NextPageToken: next, AuditEvents: make([]*quartersv1.AuditEvent, len(rows))}
	for i, r := range rows {
		if resp.AuditEvents[i], err = auditEventToProto(r); err != nil {
			return nil, err
		}
	}
	return connect.NewResponse(resp), nil
}

// state is what the platform changes about a tenant: its row and its
// overrides.
type state struct {
	tenant    dbsqlc.Tenant
	overrides overrides
}

// change is one audited change to a tenant.
type change struct {
	// action names it in the audit record: the RPC's name.
	action string
	// fields is what the audit record keeps of a state, before and after:
	// the fields the action changes.
	fields func(state) any
	// apply makes the change to the locked tenant and returns the new state.
	apply func(ctx context.Context, q *dbsqlc.Queries, before state) (state, error)
}

// change applies c to tenant id and audits it, in one transaction; then
// invalidates the tenant's cached record everywhere and returns the
// tenant's effective record and the audit event.
//
// It returns NOT_FOUND if there is no such tenant, apply's error, or
// UNAVAILABLE if the change was committed but the invalidation failed.
func (s *Service) change(ctx context.Context, id uuid.UUID, c change) (*quartersv1.TenantDetails, *quartersv1.AuditEvent, error) {
	var (
		st state
		ev dbsqlc.AuditEvent
	)
	err := s.db.ActAs(ctx, id, func(q *dbsqlc.Queries) error {
		before, err := readState(ctx, q, id, q.TenantGetForUpdate)
		if err != nil {
			return err
		}
		st, err = c.apply(ctx, q, before)
		if err != nil {
			return err
		}
		b, err := json.Marshal(c.fields(before))
		if err != nil {
			return fmt.Errorf("encode audit before: %w", err)
		}
		a, err := json.Marshal(c.fields(st))
		if err != nil {
			return fmt.Errorf("encode audit after: %w", err)
		}
		ev, err = q.AuditEventInsert(ctx, dbsqlc.AuditEventInsertParams{
			TenantID: id, Actor: Actor, Action: c.action, Before: b, After: a,
		})
		if err != nil {
			return fmt.Errorf("insert audit event: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if err := s.invalidate(ctx, id); err != nil {
		return nil, nil, err
	}
	d, err := s.details(ctx, st)
	if err != nil {
		return nil, nil, err
	}
	e, err := auditEventToProto(ev)
	if err != nil {
		return nil, nil, err
	}
	return d, e, nil
}

// invalidate announces a committed change to every replica (see
// tenant.Cache.Committed); the call is idempotent, so retrying it after a
// failure sends the invalidation again.
func (s *Service) invalidate(ctx context.Context, id uuid.UUID) error {
	return s.cache.Committed(ctx, id, "the tenant's previous plan, limits and status")
}

// details is the tenant of st with its effective limits and features, read
// from the database (not the cache) so it shows what was just committed.
func (s *Service) details(ctx context.Context, st state) (*quartersv1.TenantDetails, error) {
	eff, err := s.db.LoadTenant(ctx, st.tenant.ID)
	if errors.Is(err, db.ErrNotFound) {
		return nil, errTenantNotFound()
	}
	if err != nil {
		return nil, fmt.Errorf("load tenant: %w", err)
	}
	return &quartersv1.TenantDetails{
		Tenant:    protoconv.Tenant(st.tenant),
		Limits:    protoconv.Limits(eff.Limits),
		Features:  eff.FeatureList(),
		Overrides: st.overrides.toProto(),
	}, nil
}

// readState reads tenant id with get (TenantGet, or TenantGetForUpdate to
// lock it) and its overrides. It returns NOT_FOUND if there is no such
// tenant.
func readState(ctx context.Context, q *dbsqlc.Queries, id uuid.UUID, get func(context.Context, uuid.UUID) (dbsqlc.Tenant, error)) (state, error) {
	t, err := get(ctx, id)
	if errors.Is(err, db.ErrNotFound) {
		return state{}, errTenantNotFound()
	}
	if err != nil {
		return state{}, fmt.Errorf("get tenant: %w", err)
	}
	row, err := q.TenantOverrideGet(ctx, id)
	if errors.Is(err, db.ErrNotFound) {
		return state{tenant: t, overrides: overrides{Features: map[string]bool{}}}, nil
	}
	if err != nil {
		return state{}, fmt.Errorf("get overrides: %w", err)
	}
	o, err := overridesFromRow(row)
	return state{tenant: t, overrides: o}, err
}

func errTenantNotFound() error {
	return connect.NewError(connect.CodeNotFound, errors.New("tenant not found"))
}

// Tenant statuses as stored. A pending deletion is not a status: it is
// purge_time (package deletion), so cancelling it gives back the status
// the tenant had.
const (
	statusActive    = "active"
	statusSuspended = "suspended"
)

func setStatus(action, status string) change {
	return change{
		action: action,
		fields: func(st state) any { return map[string]string{"status": st.tenant.Status} },
		apply: func(ctx context.Context, q *dbsqlc.Queries, st state) (state, error) {
			if st.tenant.Status == status {
				return st, nil
			}
			t, err := q.TenantSetStatus(ctx, dbsqlc.TenantSetStatusParams{ID: st.tenant.ID, Status: status})
			if err != nil {
				return st, fmt.Errorf("set status: %w", err)
			}
			st.tenant = t
			return st, nil
		},
	}
}

// statusName is the stored name of a status filter; "" for any.
func statusName(s quartersv1.TenantStatus) string {
	switch s {
	case quartersv1.TenantStatus_TENANT_STATUS_ACTIVE:
		return statusActive
	case quartersv1.TenantStatus_TENANT_STATUS_SUSPENDED:
		return statusSuspended
	}
	return ""
}

// overrides are a tenant's overrides as the audit trail records them: nil
// (JSON null) is "the plan's value".
type overrides struct {
	RequestsPerMinute   *int64          `json:"requests_per_minute"`
	Burst               *int64          `json:"burst"`
	MaxProjects         *int64          `json:"max_projects"`
	MaxMembers          *int64          `json:"max_members"`
	MaxAPICallsPerMonth *int64          `json:"max_api_calls_per_month"`
	StatementTimeoutMs  *int64          `json:"statement_timeout_ms"`
	Features            map[string]bool `json:"features"`
}

func overridesFromRow(r dbsqlc.TenantOverride) (overrides, error) {
	o := overrides{
		RequestsPerMinute:   widen(r.RequestsPerMinute),
		Burst:               widen(r.Burst),
		MaxProjects:         widen(r.MaxProjects),
		MaxMembers:          widen(r.MaxMembers),
		MaxAPICallsPerMonth: clone(r.MaxApiCallsPerMonth),
		StatementTimeoutMs:  widen(r.StatementTimeoutMs),
	}
	if err := json.Unmarshal(r.Features, &o.Features); err != nil {
		return o, fmt.Errorf("tenant %s feature overrides: %w", r.TenantID, err)
	}
	if o.Features == nil {
		o.Features = map[string]bool{}
	}
	return o, nil
}

func (o overrides) clone() overrides {
	c := o
	c.Features = maps.Clone(o.Features)
	if c.Features == nil {
		c.Features = map[string]bool{}
	}
	return c
}

func (o overrides) toProto() *quartersv1.TenantOverrides {
	return &quartersv1.TenantOverrides{
		RequestsPerMinute:   clone(o.RequestsPerMinute),
		Burst:               clone(o.Burst),
		MaxProjects:         clone(o.MaxProjects),
		MaxMembers:          clone(o.MaxMembers),
		MaxApiCallsPerMonth: clone(o.MaxAPICallsPerMonth),
		StatementTimeoutMs:  clone(o.StatementTimeoutMs),
		Features:            maps.Clone(o.Features),
	}
}

func clone[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func widen(p *int32) *int64 {
	if p == nil {
		return nil
	}
	v := int64(*p)
	return &v
}

func narrow(p *int64) *int32 {
	if p == nil {
		return nil
	}
	v := int32(*p)
	return &v
}

func auditEventToProto(e dbsqlc.AuditEvent) (*quartersv1.AuditEvent, error) {
	before, after := &structpb.Struct{}, &structpb.Struct{}
	if err := protojson.Unmarshal(e.Before, before); err != nil {
		return nil, fmt.Errorf("audit event %s before: %w", e.ID, err)
	}
	if err := protojson.Unmarshal(e.After, after); err != nil {
		return nil, fmt.Errorf("audit event %s after: %w", e.ID, err)
	}
	return &quartersv1.AuditEvent{
		Id:         e.ID.String(),
		TenantId:   e.TenantID.String(),
		Actor:      e.Actor,
		Action:     e.Action,
		Before:     before,
		After:      after,
		CreateTime: timestamppb.New(e.CreateTime),
	}, nil
}

// ListTenantCosts lists every tenant's totals over a date range, the most
// database time first, after writing this replica's pending costs. The
// page token's position is (database time, tenant id): Cursor.Time holds
// the database time as microseconds since the Unix epoch.
func (s *Service) ListTenantCosts(ctx context.Context, req *connect.Request[quartersv1.ListTenantCostsRequest]) (*connect.Response[quartersv1.ListTenantCostsResponse], error) {
	first, last, err := protoconv.DateRange(req.Msg.GetStartDate(), req.Msg.GetEndDate())
	if err != nil {
		return nil, err
	}
	if err := s.cost.Flush(ctx); err != nil {
		return nil, err
	}
	filter := req.Msg.GetStartDate() + ".." + req.Msg.GetEndDate()
	rows, next, err := page.Load(req.Msg, filter, func(c page.Cursor, limit int32) ([]db.TenantCost, error) {
		return s.db.PlatformTenantCostList(ctx, db.PlatformTenantCostListParams{
			FirstDay: first, LastDay: last,
			BeforeDBTimeMicros: c.Time.UnixMicro(), BeforeID: c.ID, Limit: limit,
		})
	}, func(c db.TenantCost) page.Cursor {
		return page.Cursor{Time: time.UnixMicro(c.DBTime.Microseconds()).UTC(), ID: c.TenantID}
	})
	if err != nil {
		return nil, err
	}
	resp := &quartersv1.ListTenantCostsResponse{NextPageToken: next, TenantCosts: make([]*quartersv1.TenantCost, len(rows))}
	for i, r := range rows {
		resp.TenantCosts[i] = &quartersv1.TenantCost{TenantId: r.TenantID.String(), Cost: &quartersv1.Cost{
			Calls: r.Calls, DbTimeMicros: r.DBTime.Microseconds(), Rows: r.Rows,
		}}
	}
	return connect.NewResponse(resp), nil
}

// GetTenantCost returns one tenant's cost per day of a date range, read as
// that tenant under row-level security, after writing this replica's
// pending costs of it. An unknown tenant is NOT_FOUND.
func (s *Service) GetTenantCost(ctx context.Context, req *connect.Request[quartersv1.GetTenantCostRequest]) (*connect.Response[quartersv1.GetTenantCostResponse], error) {
	first, last, err := protoconv.DateRange(req.Msg.GetStartDate(), req.Msg.GetEndDate())
	if err != nil {
		return nil, err
	}
	id := uuid.MustParse(req.Msg.GetTenantId())
	if err := s.cost.FlushTenant(ctx, id); err != nil {
		return nil, err
	}
	var rows []dbsqlc.CostByDayRow
	err = s.db.ActAs(ctx, id, func(q *dbsqlc.Queries) error {
		if _, err := q.TenantGet(ctx, id); err != nil {
			if errors.Is(err, db.ErrNotFound) {
				return errTenantNotFound()
			}
			return fmt.Errorf("get tenant: %w", err)
		}
		rows, err = q.CostByDay(ctx, dbsqlc.CostByDayParams{TenantID: id, FirstDay: first, LastDay: last})
		return err
	})
	if err != nil {
		return nil, err
	}
	days, total := protoconv.CostDays(first, last, rows)
	return connect.NewResponse(&quartersv1.GetTenantCostResponse{Days: days, Total: total}), nil
}

// errNoCitus is IsolateTenant's and MoveTenant's answer off Citus.
var errNoCitus = errors.New("shard operations need Citus: this database is not a Citus coordinator (README, Running on Citus)")

// IsolateTenant gives the tenant shards of its own on Citus.
func (s *Service) IsolateTenant(ctx context.Context, req *connect.Request[quartersv1.IsolateTenantRequest]) (*connect.Response[quartersv1.IsolateTenantResponse], error) {
	shard, err := s.db.IsolateTenant(ctx, uuid.MustParse(req.Msg.GetTenantId()))
	if err != nil {
		return nil, shardError(err)
	}
	return connect.NewResponse(&quartersv1.IsolateTenantResponse{ShardId: shard}), nil
}

// MoveTenant moves the shards holding the tenant to another Citus worker.
func (s *Service) MoveTenant(ctx context.Context, req *connect.Request[quartersv1.MoveTenantRequest]) (*connect.Response[quartersv1.MoveTenantResponse], error) {
	host, portText, err := net.SplitHostPort(req.Msg.GetNode())
	port, perr := strconv.Atoi(portText)
	if err != nil || perr != nil || port <= 0 || port > 65535 {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("node %q: want host:port", req.Msg.GetNode()))
	}
	moved, err := s.db.MoveTenant(ctx, uuid.MustParse(req.Msg.GetTenantId()), host, port)
	if err != nil {
		return nil, shardError(err)
	}
	return connect.NewResponse(&quartersv1.MoveTenantResponse{Moved: moved}), nil
}

// shardError maps the shard operations' errors to what the caller can
// act on.
func shardError(err error) error {
	var ni *db.ErrNotIsolatable
	switch {
	case errors.Is(err, db.ErrNoCitus):
		return connect.NewError(connect.CodeFailedPrecondition, errNoCitus)
	case errors.Is(err, db.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, errors.New("tenant not found"))
	case errors.As(err, &ni):
		return connect.NewError(connect.CodeInvalidArgument, errors.New(ni.Msg))
	}
	return err
}
