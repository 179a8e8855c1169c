package webhooksvc_test

import (
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/quarters-dev/quarters/db/dbtest"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/servertest"
	"github.com/quarters-dev/quarters/internal/webhook"
)

// inbox reads a receiver's messages by type: deliveries are worked
// concurrently, so they may arrive in any order. Every body read is kept
// for the secret checks.
type inbox struct {
	r       *receiver
	waiting []received
	bodies  []string
}

// await returns the next message of type typ, keeping the others for
// later calls.
func (b *inbox) await(t *testing.T, typ string) received {
	t.Helper()
	for i, m := range b.waiting {
		if m.event.Type == typ {
			b.waiting = append(b.waiting[:i], b.waiting[i+1:]...)
			return m
		}
	}
	for {
		m := b.r.next(t)
		b.bodies = append(b.bodies, string(m.body))
		if m.event.Type == typ {
			return m
		}
		b.waiting = append(b.waiting, m)
	}
}

// subscribe registers an endpoint at r for every event type and makes r
// trust its secret, which it returns.
func subscribe(t *testing.T, s *servertest.Server, tn *servertest.Tenant, r *receiver) (endpointID, secret string) {
	t.Helper()
	created, err := webhooks(s, tn).CreateEndpoint(ctx, req(&quartersv1.CreateEndpointRequest{
		Url: r.srv.URL + "/hooks", EventTypes: webhook.EventTypes, Enabled: true,
	}))
	require.NoError(t, err)
	r.trust(created.Msg.GetSecret())
	return created.Msg.GetEndpoint().GetId(), created.Msg.GetSecret()
}

// data decodes an event's data into m, as a receiver with the SDK's types
// would.
func data[M proto.Message](t *testing.T, ev received, m M) M {
	t.Helper()
	require.NoError(t, protojson.Unmarshal(ev.event.Data, m), "%s", ev.event.Data)
	return m
}

// outbox counts a tenant's events (all types, or those of typ) and
// delivery jobs, as the database owner sees them.
func outbox(t *testing.T, s *servertest.Server, tenantID string, typ ...string) (events, jobs int) {
	t.Helper()
	q := "select (select count(*) from webhook_events where tenant_id = $1 and ($2 = '' or type = $2)), " +
		"(select count(*) from river_job where kind = 'webhook_delivery' and args->>'tenant_id' = $1::text)"
	require.NoError(t, ownerRow(t, s, q, tenantID, strings.Join(typ, "")).Scan(&events, &jobs))
	return events, jobs
}

// requireNoSecrets fails if any body holds one of the secrets, or any
// field that looks like a hash or a token.
func requireNoSecrets(t *testing.T, bodies []string, secrets ...string) {
	t.Helper()
	require.NotEmpty(t, bodies)
	for _, b := range bodies {
		for _, sec := range secrets {
			require.NotEmpty(t, sec)
			require.NotContains(t, b, sec)
		}
		for _, word := range []string{"hash", "Hash", "token", "Token", "secret", "Secret", "$argon2"} {
			require.NotContains(t, b, word)
		}
	}
}

// TestDocumentEvents: document.created, updated and deleted reach a
// verifying receiver with the document as the API returned it; refused
// changes write nothing; another tenant's endpoint receives none of it.
func TestDocumentEvents(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a, b := enterprise(t, s), enterprise(t, s)
	ra, rb := newReceiver(t), newReceiver(t)
	endpointA, secretA := subscribe(t, s, a, ra)
	endpointB, _ := subscribe(t, s, b, rb)
	in := &inbox{r: ra}

	p := apitest.CreateProject(t, a, "Apollo")
	in.await(t, webhook.ProjectCreated)
	d := apitest.CreateDocument(t, a, p.GetId(), "Plan")
	ev := in.await(t, webhook.DocumentCreated)
	require.True(t, proto.Equal(d, data(t, ev, &quartersv1.Document{})), "event data is the document as created: %s", ev.event.Data)
	require.Equal(t, p.GetId(), d.GetProjectId())

	up, err := a.Documents.UpdateDocument(ctx, req(&quartersv1.UpdateDocumentRequest{
		Document: &quartersv1.Document{Id: d.GetId(), Title: "Plan B"}, UpdateMask: apitest.Mask("title"),
	}))
	require.NoError(t, err)
	ev = in.await(t, webhook.DocumentUpdated)
	got := data(t, ev, &quartersv1.Document{})
	require.True(t, proto.Equal(up.Msg.GetDocument(), got), "%s", ev.event.Data)
	require.Equal(t, "Plan B", got.GetTitle())
	require.Equal(t, "text of Plan", got.GetContent())

	// Refused changes, each a rolled-back transaction: nothing written.
	events, jobs := outbox(t, s, a.ID)
	_, err = a.Documents.UpdateDocument(ctx, req(&quartersv1.UpdateDocumentRequest{
		Document: &quartersv1.Document{Id: uuid.NewString(), Title: "x"}, UpdateMask: apitest.Mask("title"),
	}))
	apitest.RequireCode(t, err, connect.CodeNotFound)
	bp := apitest.CreateProject(t, b, "b's")
	_, err = a.Documents.CreateDocument(ctx, req(&quartersv1.CreateDocumentRequest{ProjectId: bp.GetId(), Title: "into b"}))
	apitest.RequireCode(t, err, connect.CodeNotFound)
	_, err = a.Documents.DeleteDocument(ctx, req(&quartersv1.DeleteDocumentRequest{Id: uuid.NewString()}))
	apitest.RequireCode(t, err, connect.CodeNotFound)
	// b's document, updated and deleted by a: not found, nothing emitted
	// for either tenant.
	bd := apitest.CreateDocument(t, b, bp.GetId(), "b doc")
	_, err = a.Documents.DeleteDocument(ctx, req(&quartersv1.DeleteDocumentRequest{Id: bd.GetId()}))
	apitest.RequireCode(t, err, connect.CodeNotFound)
	e2, j2 := outbox(t, s, a.ID)
	require.Equal(t, events, e2, "a refused change wrote an event")
	require.Equal(t, jobs, j2, "a refused change enqueued a delivery")

	_, err = a.Documents.DeleteDocument(ctx, req(&quartersv1.DeleteDocumentRequest{Id: d.GetId()}))
	require.NoError(t, err)
	ev = in.await(t, webhook.DocumentDeleted)
	require.Equal(t, d.GetId(), data(t, ev, &quartersv1.Document{}).GetId())
	requireNoSecrets(t, in.bodies, secretA)

	// b's endpoint got b's events only: its project and document, never
	// a's; and b cannot list a's deliveries.
	inB := &inbox{r: rb}
	require.Equal(t, bp.GetId(), data(t, inB.await(t, webhook.ProjectCreated), &quartersv1.Project{}).GetId())
	require.Equal(t, bd.GetId(), data(t, inB.await(t, webhook.DocumentCreated), &quartersv1.Document{}).GetId())
	var foreign int
	require.NoError(t, ownerRow(t, s, `select count(*) from webhook_deliveries dl join webhook_events ev on ev.id = dl.event_id
		where dl.endpoint_id = $1 and (ev.tenant_id <> $2 or ev.payload::text like '%'||$3||'%' or ev.payload::text like '%'||$4||'%')`,
		endpointB, b.ID, a.ID, d.GetId()).Scan(&foreign))
	require.Zero(t, foreign)
	_, err = webhooks(s, b).ListDeliveries(ctx, req(&quartersv1.ListDeliveriesRequest{EndpointId: endpointA}))
	require.Equal(t, "webhook endpoint not found", apitest.RequireCode(t, err, connect.CodeNotFound).Message())
	select {
	case m := <-rb.got:
		require.NotContains(t, string(m.body), d.GetId())
		require.NotContains(t, string(m.body), p.GetId())
	default:
	}
}

// TestMemberAndKeyEvents: member.invited, member.joined,
// member.role_updated, member.invitation_revoked, member.removed,
// api_key.created and api_key.revoked carry the resource as the API shows
// it and never a secret (API key secret, invitation token, password or
// its hash, the endpoint's signing secret); refusals, and an acceptance
// that fails after its first write, emit nothing.
func TestMemberAndKeyEvents(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := enterprise(t, s)
	r := newReceiver(t)
	_, whSecret := subscribe(t, s, a, r)
	in := &inbox{r: r}
	owner := s.AsUser(a.Owner)
	email := fmt.Sprintf("dev-%s@events.example", uuid.NewString()[:8])

	inv, token := apitest.InviteFull(t, owner, email, quartersv1.Role_ROLE_MEMBER)
	ev := in.await(t, webhook.MemberInvited)
	require.True(t, proto.Equal(inv, data(t, ev, &quartersv1.Invitation{})), "%s", ev.event.Data)
	require.NotContains(t, string(ev.body), token)
	// A second invitation before dev joins: still pending when dev is
	// removed, and closed with the removal.
	again, againToken := apitest.InviteFull(t, owner, email, quartersv1.Role_ROLE_MEMBER)
	require.Equal(t, again.GetId(), data(t, in.await(t, webhook.MemberInvited), &quartersv1.Invitation{}).GetId())

	sess, err := apitest.AcceptInvitation(s, token, apitest.MemberPassword)
	require.NoError(t, err)
	userID := sess.GetUser().GetId()
	ev = in.await(t, webhook.MemberJoined)
	joined := data(t, ev, &quartersv1.Member{})
	require.Equal(t, userID, joined.GetUser().GetId())
	require.Equal(t, email, joined.GetUser().GetEmail())
	require.Equal(t, quartersv1.Role_ROLE_MEMBER, joined.GetRole())

	require.NoError(t, apitest.SetRole(owner, userID, quartersv1.Role_ROLE_ADMIN))
	ev = in.await(t, webhook.MemberRoleUpdated)
	require.Equal(t, quartersv1.Role_ROLE_ADMIN, data(t, ev, &quartersv1.Member{}).GetRole())
	require.Equal(t, userID, data(t, ev, &quartersv1.Member{}).GetUser().GetId())

	// The new admin creates a key; removing them revokes it.
	dev := s.AsUser(apitest.MustSignIn(t, s, email, apitest.MemberPassword, a.Slug))
	devKey, devSecret := apitest.CreateKey(t, dev, "ci", quartersv1.Role_ROLE_MEMBER)
	ev = in.await(t, webhook.APIKeyCreated)
	require.True(t, proto.Equal(devKey, data(t, ev, &quartersv1.ApiKey{})), "%s", ev.event.Data)
	require.Equal(t, userID, devKey.GetCreatedBy())

	// Refusals write nothing: the last owner's demotion, the same role
	// again, an invitation past max_members, a made-up invitation.
	events, jobs := outbox(t, s, a.ID)
	err = apitest.SetRole(owner, a.Owner.GetUser().GetId(), quartersv1.Role_ROLE_ADMIN)
	apitest.RequireCode(t, err, connect.CodeFailedPrecondition)
	require.NoError(t, apitest.SetRole(owner, userID, quartersv1.Role_ROLE_ADMIN), "unchanged: no event")
	apitest.SetMaxMembers(t, s, a.ID, 2)
	_, err = owner.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "third@events.example", Role: quartersv1.Role_ROLE_MEMBER}))
	apitest.RequireMemberQuota(t, err, 2)
	_, err = owner.Members.RevokeInvitation(ctx, req(&quartersv1.RevokeInvitationRequest{Id: uuid.NewString()}))
	apitest.RequireCode(t, err, connect.CodeNotFound)
	e2, j2 := outbox(t, s, a.ID)
	require.Equal(t, events, e2)
	require.Equal(t, jobs, j2)

	// An acceptance that fails after its first write (the invitation
	// marked accepted, then no seat left for the membership) rolls back
	// whole: no member.joined, and the invitation stays usable.
	apitest.SetMaxMembers(t, s, a.ID, 3)
	late, lateToken := apitest.InviteFull(t, owner, "late@events.example", quartersv1.Role_ROLE_MEMBER)
	in.await(t, webhook.MemberInvited)
	apitest.SetMaxMembers(t, s, a.ID, 2)
	events, jobs = outbox(t, s, a.ID)
	_, err = apitest.AcceptInvitation(s, lateToken, apitest.MemberPassword)
	apitest.RequireMemberQuota(t, err, 2)
	e2, j2 = outbox(t, s, a.ID)
	require.Equal(t, events, e2)
	require.Equal(t, jobs, j2)
	require.Zero(t, apitest.OwnerCount(t, s, "select count(*) from invitations where id = $1 and accept_time is not null", late.GetId()))
	_, err = owner.Members.RevokeInvitation(ctx, req(&quartersv1.RevokeInvitationRequest{Id: late.GetId()}))
	require.NoError(t, err)
	ev = in.await(t, webhook.MemberInvitationRevoked)
	revoked := data(t, ev, &quartersv1.Invitation{})
	require.Equal(t, late.GetId(), revoked.GetId())
	require.NotNil(t, revoked.GetRevokeTime())

	// Removing dev revokes dev's key and closes dev's second invitation.
	require.NoError(t, apitest.RemoveMember(owner, userID))
	ev = in.await(t, webhook.MemberRemoved)
	removed := data(t, ev, &quartersv1.Member{})
	require.Equal(t, email, removed.GetUser().GetEmail())
	require.Equal(t, quartersv1.Role_ROLE_ADMIN, removed.GetRole())
	ev = in.await(t, webhook.APIKeyRevoked)
	require.Equal(t, devKey.GetId(), data(t, ev, &quartersv1.ApiKey{}).GetId())
	require.NotNil(t, data(t, ev, &quartersv1.ApiKey{}).GetRevokeTime())
	ev = in.await(t, webhook.MemberInvitationRevoked)
	require.Equal(t, again.GetId(), data(t, ev, &quartersv1.Invitation{}).GetId())

	// RevokeApiKey: one event, at the first revocation only.
	k, kSecret := apitest.CreateKey(t, a, "deploy", quartersv1.Role_ROLE_MEMBER)
	require.Equal(t, k.GetId(), data(t, in.await(t, webhook.APIKeyCreated), &quartersv1.ApiKey{}).GetId())
	for range 2 {
		_, err = a.Auth.RevokeApiKey(ctx, req(&quartersv1.RevokeApiKeyRequest{Id: k.GetId()}))
		require.NoError(t, err)
	}
	ev = in.await(t, webhook.APIKeyRevoked)
	require.Equal(t, k.GetId(), data(t, ev, &quartersv1.ApiKey{}).GetId())
	n, _ := outbox(t, s, a.ID, webhook.APIKeyRevoked)
	require.Equal(t, 2, n, "dev's key and this one, each once")

	// No secret anywhere: neither in what was delivered nor in what the
	// outbox keeps.
	var stored string
	require.NoError(t, ownerRow(t, s, "select string_agg(payload::text, ' ') from webhook_events where tenant_id = $1", a.ID).Scan(&stored))
	var hashes string
	require.NoError(t, ownerRow(t, s, "select coalesce(password_hash, '') from users where email = $1", email).Scan(&hashes))
	require.NotEmpty(t, hashes)
	secrets := []string{whSecret, devSecret, kSecret, token, lateToken, againToken, apitest.MemberPassword, servertest.OwnerPassword, hashes}
	requireNoSecrets(t, in.bodies, secrets...)
	requireNoSecrets(t, []string{stored}, secrets...)
}

// TestNoFeatureNoEvents: a tenant whose plan lost custom_webhooks writes
// no event and enqueues no delivery for any kind of change, even with an
// endpoint left from its earlier plan.
func TestNoFeatureNoEvents(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := enterprise(t, s)
	subscribe(t, s, a, newReceiver(t))
	s.SetPlan(t, a.ID, "free")
	owner := s.AsUser(a.Owner)

	p := apitest.CreateProject(t, a, "free")
	d := apitest.CreateDocument(t, a, p.GetId(), "doc")
	_, err := a.Documents.UpdateDocument(ctx, req(&quartersv1.UpdateDocumentRequest{
		Document: &quartersv1.Document{Id: d.GetId(), Title: "doc 2"}, UpdateMask: apitest.Mask("title"),
	}))
	require.NoError(t, err)
	_, err = a.Documents.DeleteDocument(ctx, req(&quartersv1.DeleteDocumentRequest{Id: d.GetId()}))
	require.NoError(t, err)
	inv, token := apitest.InviteFull(t, owner, "free-dev@events.example", quartersv1.Role_ROLE_MEMBER)
	sess, err := apitest.AcceptInvitation(s, token, apitest.MemberPassword)
	require.NoError(t, err)
	require.NoError(t, apitest.SetRole(owner, sess.GetUser().GetId(), quartersv1.Role_ROLE_ADMIN))
	k, _ := apitest.CreateKey(t, a, "k", quartersv1.Role_ROLE_MEMBER)
	_, err = a.Auth.RevokeApiKey(ctx, req(&quartersv1.RevokeApiKeyRequest{Id: k.GetId()}))
	require.NoError(t, err)
	require.NoError(t, apitest.RemoveMember(owner, sess.GetUser().GetId()))
	_, err = owner.Members.RevokeInvitation(ctx, req(&quartersv1.RevokeInvitationRequest{Id: inv.GetId()}))
	apitest.RequireCode(t, err, connect.CodeFailedPrecondition) // accepted: nothing to revoke

	events, jobs := outbox(t, s, a.ID)
	require.Zero(t, events)
	require.Zero(t, jobs)
}

// TestEveryEventTypeSubscribable: CreateEndpoint and UpdateEndpoint accept
// every type Emit writes (the contract's lists and webhook.EventTypes
// agree) and refuse unknown ones; there are no wildcards.
func TestEveryEventTypeSubscribable(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	wh := webhooks(s, enterprise(t, s))
	created, err := wh.CreateEndpoint(ctx, req(&quartersv1.CreateEndpointRequest{Url: "https://hooks.example.com/", EventTypes: webhook.EventTypes}))
	require.NoError(t, err)
	require.Equal(t, webhook.EventTypes, created.Msg.GetEndpoint().GetEventTypes())
	id := created.Msg.GetEndpoint().GetId()
	for _, typ := range webhook.EventTypes {
		up, err := wh.UpdateEndpoint(ctx, req(&quartersv1.UpdateEndpointRequest{
			Endpoint: &quartersv1.WebhookEndpoint{Id: id, EventTypes: []string{typ}}, UpdateMask: apitest.Mask("event_types"),
		}))
		require.NoError(t, err, typ)
		require.Equal(t, []string{typ}, up.Msg.GetEndpoint().GetEventTypes())
	}
	for _, bad := range []string{"document.exploded", "document.*", "*", "member.created", "api_key.updated"} {
		_, err := wh.CreateEndpoint(ctx, req(&quartersv1.CreateEndpointRequest{Url: "https://hooks.example.com/", EventTypes: []string{bad}}))
		require.Contains(t, apitest.RequireCode(t, err, connect.CodeInvalidArgument).Message(), "event_types", bad)
		_, err = wh.UpdateEndpoint(ctx, req(&quartersv1.UpdateEndpointRequest{
			Endpoint: &quartersv1.WebhookEndpoint{Id: id, EventTypes: []string{bad}}, UpdateMask: apitest.Mask("event_types"),
		}))
		require.Contains(t, apitest.RequireCode(t, err, connect.CodeInvalidArgument).Message(), "event_types", bad)
	}
}

// TestWritesWithoutFeatureStayLazy: a document write of a tenant without
// custom_webhooks is InTenant's lazy transaction (the write batched with
// BEGIN and the tenant setting, then COMMIT: two round trips); only a
// tenant with the feature pays for the eager transaction the delivery
// jobs are enqueued in.
func TestWritesWithoutFeatureStayLazy(t *testing.T) {
	t.Parallel()
	wire := &dbtest.Wire{}
	s := servertest.NewWith(t, &servertest.Opts{DBConfigFunc: wire.Count})
	free, ent := s.SignUp(t), enterprise(t, s)
	// A disabled endpoint: the enterprise tenant's writes take the eager
	// transaction, and no delivery job runs on the counted pool meanwhile.
	_, err := webhooks(s, ent).CreateEndpoint(ctx, req(&quartersv1.CreateEndpointRequest{
		Url: "https://hooks.example.com/", EventTypes: webhook.EventTypes, Enabled: false,
	}))
	require.NoError(t, err)
	for _, c := range []struct {
		name               string
		tn                 *servertest.Tenant
		minTrips, maxTrips int64
	}{{"free", free, 2, 2}, {"enterprise", ent, 3, 10}} {
		p := apitest.CreateProject(t, c.tn, "p")
		d := apitest.CreateDocument(t, c.tn, p.GetId(), "d") // keys and tenant cached from here on
		// The pool also serves background work (flushes, River), which
		// can only add to a count: the least of a few calls is the call's.
		least := dbtest.WireCounts{RoundTrips: 1 << 30, Transactions: 1 << 30}
		for range 5 {
			wire.Reset()
			_, err := c.tn.Documents.UpdateDocument(ctx, req(&quartersv1.UpdateDocumentRequest{
				Document: &quartersv1.Document{Id: d.GetId(), Title: "d2"}, UpdateMask: apitest.Mask("title"),
			}))
			require.NoError(t, err)
			got := wire.Counts()
			least.RoundTrips, least.Transactions = min(least.RoundTrips, got.RoundTrips), min(least.Transactions, got.Transactions)
		}
		require.Equal(t, int64(1), least.Transactions, c.name)
		require.GreaterOrEqual(t, least.RoundTrips, c.minTrips, c.name)
		require.LessOrEqual(t, least.RoundTrips, c.maxTrips, c.name)
	}
}
