// Package webhooksvc implements quarters.v1.WebhookService: a tenant's
// webhook endpoints, their secrets and their deliveries. Delivery itself
// (the outbox, signing, the job) is internal/webhook's.
package webhooksvc

import (
	"context"
	"errors"
	"slices"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/gen/quarters/v1/quartersv1connect"
	"github.com/quarters-dev/quarters/internal/apierr"
	"github.com/quarters-dev/quarters/internal/jobs"
	"github.com/quarters-dev/quarters/internal/protoconv"
	"github.com/quarters-dev/quarters/internal/tenancy"
	"github.com/quarters-dev/quarters/internal/webhook"
)

// Params are New's inputs.
type Params struct {
	DB   *db.DB
	Jobs *jobs.Client
	// AllowLoopback admits http endpoints on loopback hosts, for
	// development (webhook.ClientOpts.AllowLoopback must agree).
	AllowLoopback bool
}

// Service implements quartersv1connect.WebhookServiceHandler. Requests
// arrive authenticated, bound to a tenant with the feature, and validated.
type Service struct{ p Params }

var _ quartersv1connect.WebhookServiceHandler = (*Service)(nil)

// New returns the service.
func New(p Params) *Service { return &Service{p: p} }

// DefaultDeliveries is ListDeliveries' page size when none is given.
const DefaultDeliveries = 50

var (
	errEndpointNotFound = connect.NewError(connect.CodeNotFound, errors.New("webhook endpoint not found"))
	errDeliveryNotFound = connect.NewError(connect.CodeNotFound, errors.New("webhook delivery not found"))
)

// notFound replaces db.ErrNotFound with e, so another tenant's id and a
// made-up one read the same.
func notFound(err error, e *connect.Error) error {
	if errors.Is(err, db.ErrNotFound) {
		return e
	}
	return err
}

func (s *Service) checkURL(field, raw string) error {
	if err := webhook.CheckURL(raw, s.p.AllowLoopback); err != nil {
		return apierr.InvalidField(field, err.Error())
	}
	return nil
}

// CreateEndpoint registers an endpoint with a fresh secret.
func (s *Service) CreateEndpoint(ctx context.Context, req *connect.Request[quartersv1.CreateEndpointRequest]) (*connect.Response[quartersv1.CreateEndpointResponse], error) {
	m := req.Msg
	if err := s.checkURL("url", m.GetUrl()); err != nil {
		return nil, err
	}
	secret := webhook.NewSecret()
	row, err := db.InTenantV(ctx, s.p.DB, func(q *dbsqlc.Queries) (dbsqlc.WebhookEndpoint, error) {
		return q.WebhookEndpointInsert(ctx, dbsqlc.WebhookEndpointInsertParams{
			TenantID: tenancy.MustFromContext(ctx).ID, Url: m.GetUrl(), EventTypes: m.GetEventTypes(), Enabled: m.GetEnabled(), Secret: secret,
		})
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&quartersv1.CreateEndpointResponse{Endpoint: endpointToProto(row), Secret: secret}), nil
}

// ListEndpoints lists the tenant's endpoints, newest first.
func (s *Service) ListEndpoints(ctx context.Context, _ *connect.Request[quartersv1.ListEndpointsRequest]) (*connect.Response[quartersv1.ListEndpointsResponse], error) {
	rows, err := db.InTenantV(ctx, s.p.DB, func(q *dbsqlc.Queries) ([]dbsqlc.WebhookEndpoint, error) {
		return q.WebhookEndpointList(ctx, tenancy.MustFromContext(ctx).ID)
	})
	if err != nil {
		return nil, err
	}
	resp := &quartersv1.ListEndpointsResponse{Endpoints: make([]*quartersv1.WebhookEndpoint, len(rows))}
	for i, r := range rows {
		resp.Endpoints[i] = endpointToProto(r)
	}
	return connect.NewResponse(resp), nil
}

// UpdateEndpoint changes the fields named in the update mask.
func (s *Service) UpdateEndpoint(ctx context.Context, req *connect.Request[quartersv1.UpdateEndpointRequest]) (*connect.Response[quartersv1.UpdateEndpointResponse], error) {
	e, paths := req.Msg.GetEndpoint(), req.Msg.GetUpdateMask().GetPaths()
	id := uuid.MustParse(e.GetId())
	setURL := slices.Contains(paths, "url")
	if setURL {
		if err := s.checkURL("endpoint.url", e.GetUrl()); err != nil {
			return nil, err
		}
	}
	row, err := db.InTenantV(ctx, s.p.DB, func(q *dbsqlc.Queries) (dbsqlc.WebhookEndpoint, error) {
		return q.WebhookEndpointUpdate(ctx, dbsqlc.WebhookEndpointUpdateParams{
			TenantID: tenancy.MustFromContext(ctx).ID, ID: id,
			SetUrl: setURL, Url: e.GetUrl(),
			SetEventTypes: slices.Contains(paths, "event_types"), EventTypes: e.GetEventTypes(),
			SetEnabled: slices.Contains(paths, "enabled"), Enabled: e.GetEnabled(),
		})
	})
	if err != nil {
		return nil, notFound(err, errEndpointNotFound)
	}
	return connect.NewResponse(&quartersv1.UpdateEndpointResponse{Endpoint: endpointToProto(row)}), nil
}

// DeleteEndpoint deletes an endpoint with its deliveries.
func (s *Service) DeleteEndpoint(ctx context.Context, req *connect.Request[quartersv1.DeleteEndpointRequest]) (*connect.Response[quartersv1.DeleteEndpointResponse], error) {
	n, err := db.InTenantV(ctx, s.p.DB, func(q *dbsqlc.Queries) (int64, error) {
		return q.WebhookEndpointDelete(ctx, dbsqlc.WebhookEndpointDeleteParams{
			TenantID: tenancy.MustFromContext(ctx).ID, ID: uuid.MustParse(req.Msg.GetId()),
		})
	})
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errEndpointNotFound
	}
	return connect.NewResponse(&quartersv1.DeleteEndpointResponse{}), nil
}

// RotateSecret replaces the endpoint's secret; the old one keeps signing
// for webhook.RotationOverlap.
func (s *Service) RotateSecret(ctx context.Context, req *connect.Request[quartersv1.RotateSecretRequest]) (*connect.Response[quartersv1.RotateSecretResponse], error) {
	secret := webhook.NewSecret()
	row, err := db.InTenantV(ctx, s.p.DB, func(q *dbsqlc.Queries) (dbsqlc.WebhookEndpoint, error) {
		return q.WebhookEndpointRotateSecret(ctx, dbsqlc.WebhookEndpointRotateSecretParams{
			TenantID: tenancy.MustFromContext(ctx).ID, ID: uuid.MustParse(req.Msg.GetId()),
			Secret: secret, Overlap: pgtype.Interval{Microseconds: webhook.RotationOverlap.Microseconds(), Valid: true},
		})
	})
	if err != nil {
		return nil, notFound(err, errEndpointNotFound)
	}
	return connect.NewResponse(&quartersv1.RotateSecretResponse{Endpoint: endpointToProto(row), Secret: secret}), nil
}

// ListDeliveries lists an endpoint's recent deliveries, newest first.
func (s *Service) ListDeliveries(ctx context.Context, req *connect.Request[quartersv1.ListDeliveriesRequest]) (*connect.Response[quartersv1.ListDeliveriesResponse], error) {
	t := tenancy.MustFromContext(ctx)
	endpoint := uuid.MustParse(req.Msg.GetEndpointId())
	limit := req.Msg.GetPageSize()
	if limit == 0 {
		limit = DefaultDeliveries
	}
	rows, err := db.InTenantV(ctx, s.p.DB, func(q *dbsqlc.Queries) ([]dbsqlc.WebhookDeliveryListRow, error) {
		// An endpoint that is not the tenant's is NOT_FOUND, not an empty
		// list: the same answer as for an id that never existed.
		if _, err := q.WebhookEndpointGet(ctx, dbsqlc.WebhookEndpointGetParams{TenantID: t.ID, ID: endpoint}); err != nil {
			return nil, err
		}
		return q.WebhookDeliveryList(ctx, dbsqlc.WebhookDeliveryListParams{TenantID: t.ID, EndpointID: endpoint, PageLimit: limit})
	})
	if err != nil {
		return nil, notFound(err, errEndpointNotFound)
	}
	resp := &quartersv1.ListDeliveriesResponse{Deliveries: make([]*quartersv1.WebhookDelivery, len(rows))}
	for i, r := range rows {
		resp.Deliveries[i] = deliveryToProto(dbsqlc.WebhookDeliveryGetRow(r))
	}
	return connect.NewResponse(resp), nil
}

// Redeliver queues a new delivery of a delivery's event to its endpoint.
func (s *Service) Redeliver(ctx context.Context, req *connect.Request[quartersv1.RedeliverRequest]) (*connect.Response[quartersv1.RedeliverResponse], error) {
	t := tenancy.MustFromContext(ctx)
	var row dbsqlc.WebhookDeliveryGetRow
	err := s.p.DB.InTenantTx(ctx, func(q *dbsqlc.Queries, tx pgx.Tx) error {
		id, err := q.WebhookDeliveryRedeliver(ctx, dbsqlc.WebhookDeliveryRedeliverParams{TenantID: t.ID, ID: uuid.MustParse(req.Msg.GetDeliveryId())})
		if err != nil {
			return err
		}
		if row, err = q.WebhookDeliveryGet(ctx, dbsqlc.WebhookDeliveryGetParams{TenantID: t.ID, ID: id}); err != nil {
			return err
		}
		return webhook.Enqueue(ctx, tx, s.p.Jobs, t.ID, id)
	})
	if err != nil {
		return nil, notFound(err, errDeliveryNotFound)
	}
	return connect.NewResponse(&quartersv1.RedeliverResponse{Delivery: deliveryToProto(row)}), nil
}

func endpointToProto(r dbsqlc.WebhookEndpoint) *quartersv1.WebhookEndpoint {
	return &quartersv1.WebhookEndpoint{
		Id:               r.ID.String(),
		Url:              r.Url,
		EventTypes:       r.EventTypes,
		Enabled:          r.Enabled,
		CreateTime:       timestamppb.New(r.CreateTime),
		UpdateTime:       timestamppb.New(r.UpdateTime),
		SecretRotateTime: timestamppb.New(r.SecretRotateTime),
		DisabledReason:   r.DisabledReason,
	}
}

var statuses = map[string]quartersv1.DeliveryStatus{
	webhook.StatusPending:   quartersv1.DeliveryStatus_DELIVERY_STATUS_PENDING,
	webhook.StatusSucceeded: quartersv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED,
	webhook.StatusFailed:    quartersv1.DeliveryStatus_DELIVERY_STATUS_FAILED,
}

func deliveryToProto(r dbsqlc.WebhookDeliveryGetRow) *quartersv1.WebhookDelivery {
	d := &quartersv1.WebhookDelivery{
		Id:              r.ID.String(),
		EndpointId:      r.EndpointID.String(),
		EventId:         r.EventID.String(),
		EventType:       r.EventType,
		Status:          statuses[r.Status],
		Attempts:        r.Attempts,
		Error:           r.Error,
		CreateTime:      timestamppb.New(r.CreateTime),
		LastAttemptTime: protoconv.OptionalTime(r.LastAttemptTime),
	}
	if r.ResponseCode != nil {
		d.ResponseCode = *r.ResponseCode
	}
	return d
}
