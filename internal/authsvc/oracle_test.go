package authsvc_test

import (
	"errors"
	"fmt"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// answer is a call's whole answer as bytes: the response message
// (deterministically marshalled, after scrub cleared what differs by
// construction, such as fresh ids, secrets and times), or the error's
// code, message and details.
func answer[T any, P interface {
	*T
	proto.Message
}](t *testing.T, resp *connect.Response[T], err error, scrub func(P)) string {
	t.Helper()
	if err != nil {
		var cerr *connect.Error
		require.True(t, errors.As(err, &cerr), "%v", err)
		out := fmt.Sprintf("%s|%s", cerr.Code(), cerr.Message())
		for _, d := range cerr.Details() {
			out += fmt.Sprintf("|%s:%x", d.Type(), d.Bytes())
		}
		return out
	}
	msg := proto.Clone(P(resp.Msg)).(P)
	if scrub != nil {
		scrub(msg)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	require.NoError(t, err)
	return "ok|" + fmt.Sprintf("%x", b)
}

// requireSame fails unless every kind of email got the same answer.
func requireSame(t *testing.T, what string, answers map[string]string) {
	t.Helper()
	want := answers["fresh"]
	require.NotEmpty(t, want, what)
	for kind, got := range answers {
		require.Equal(t, want, got, "%s: the answer for %s differs from a fresh email's", what, kind)
	}
}

func scrubTenant(tn *quartersv1.Tenant) {
	tn.Id, tn.Slug, tn.OwnerEmail, tn.CreateTime = "", "", "", nil
}

func scrubMember(m *quartersv1.Member) {
	m.User.Id, m.User.Email, m.CreateTime, m.UpdateTime = "", "", nil, nil
}

func scrubInvitation(i *quartersv1.Invitation) {
	i.Id, i.Email, i.CreateTime, i.ExpireTime = "", "", nil, nil
}

// TestNoAccountOracle is issue 9's V3: no public or tenant-level answer
// tells whether an email has an account elsewhere. For each RPC that takes
// an email (and the lists that show what it created), the answer for an
// address with an account of each kind is byte for byte the answer for a
// fresh address, apart from fresh ids, secrets and times.
func TestNoAccountOracle(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	emails := map[string]string{"fresh": "fresh@oracle.example", "verified": s.SignUp(t).OwnerEmail}
	for kind, pw := range map[string]string{"unverified": "someone's password", "passwordless": ""} {
		emails[kind] = kind + "@oracle.example"
		_, err := s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{
			Slug: "made-" + kind, Name: "Made", OwnerEmail: emails[kind], OwnerPassword: pw,
		}))
		require.NoError(t, err)
	}
	prober := apitest.SignUpRoomy(t, s) // a tenant's admin, by API key and in person
	probers := map[string]*servertest.Tenant{"admin key": prober, "owner": s.AsUser(prober.Owner)}

	// Sign-up naming the email as owner, with and without a password,
	// and what the new tenant's lists then show of its owner.
	for _, pw := range []string{"", "the prober's password"} {
		signUps, lists, gets := map[string]string{}, map[string]string{}, map[string]string{}
		for kind, email := range emails {
			slug := fmt.Sprintf("probe-%s-%d", kind, len(pw))
			resp, err := s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{Slug: slug, Name: "Probe", OwnerEmail: email, OwnerPassword: pw}))
			signUps[kind] = answer(t, resp, err, func(m *quartersv1.CreateTenantResponse) {
				scrubTenant(m.GetTenant())
				m.ApiKey.Id, m.ApiKey.Prefix, m.ApiKey.CreateTime, m.ApiKeySecret = "", "", nil, ""
			})
			require.NoError(t, err)
			probe := s.As(resp.Msg.GetTenant().GetId(), slug, resp.Msg.GetApiKeySecret())
			ms, err := probe.Members.ListMembers(ctx, req(&quartersv1.ListMembersRequest{}))
			lists[kind] = answer(t, ms, err, func(m *quartersv1.ListMembersResponse) {
				for _, mm := range m.GetMembers() {
					scrubMember(mm)
				}
			})
			tn, err := probe.Tenants.GetTenant(ctx, req(&quartersv1.GetTenantRequest{}))
			gets[kind] = answer(t, tn, err, func(m *quartersv1.GetTenantResponse) { scrubTenant(m.GetTenant()) })
		}
		requireSame(t, fmt.Sprintf("CreateTenant (password %q)", pw), signUps)
		requireSame(t, "ListMembers after sign-up", lists)
		requireSame(t, "GetTenant after sign-up", gets)
	}

	// Invitations, by key and in person, and the pending list.
	for name, p := range probers {
		invites := map[string]string{}
		for kind, email := range emails {
			resp, err := p.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: email, Role: quartersv1.Role_ROLE_MEMBER}))
			invites[kind] = answer(t, resp, err, func(m *quartersv1.InviteMemberResponse) { scrubInvitation(m.GetInvitation()) })
		}
		requireSame(t, "InviteMember by "+name, invites)
	}
	lists, err := prober.Members.ListInvitations(ctx, req(&quartersv1.ListInvitationsRequest{PageSize: 100}))
	require.NoError(t, err)
	pending := map[string]string{}
	for _, inv := range lists.Msg.GetInvitations() {
		for kind, email := range emails {
			if inv.GetEmail() == email {
				scrubInvitation(inv)
				b, err := proto.MarshalOptions{Deterministic: true}.Marshal(inv)
				require.NoError(t, err)
				pending[kind] = fmt.Sprintf("%x", b)
			}
		}
	}
	require.Len(t, pending, len(emails))
	requireSame(t, "ListInvitations", pending)

	// The public RPCs: reset and verification requests, and a sign-in
	// with a wrong password (the right one is known only to the owner).
	resets, verifications, signIns := map[string]string{}, map[string]string{}, map[string]string{}
	for kind, email := range emails {
		r, err := anonAuth(s).Auth.RequestPasswordReset(ctx, req(&quartersv1.RequestPasswordResetRequest{Email: email}))
		resets[kind] = answer(t, r, err, nil)
		v, err := anonAuth(s).Auth.RequestEmailVerification(ctx, req(&quartersv1.RequestEmailVerificationRequest{Email: email}))
		verifications[kind] = answer(t, v, err, nil)
		si, err := anonAuth(s).Auth.SignIn(ctx, req(&quartersv1.SignInRequest{Email: email, Password: "a guess", Tenant: prober.Slug}))
		signIns[kind] = answer(t, si, err, nil)
	}
	requireSame(t, "RequestPasswordReset", resets)
	requireSame(t, "RequestEmailVerification", verifications)
	requireSame(t, "SignIn", signIns)
}
