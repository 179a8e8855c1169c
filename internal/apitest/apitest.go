// Package apitest holds the helpers the API tests of several packages
// share: calling the API as a tenant, reading error details, setting up
// members, invitations and keys through the API itself. Import it only
// from tests; each helper fails the test on an unexpected error.
package apitest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/notify"
	"github.com/quarters-dev/quarters/internal/servertest"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// The takeover scenario's accounts (issue 9, V1): the victim, and the
// attacker with their own tenant and password.
const (
	VictimEmail    = "ceo@globex-x.example"
	MalloryChose   = "mallory-chose-this"
	AttackerEmail  = "mallory@evil-x.example"
	AttackerOwnPwd = "mallory's own password"
)

// ctx is the context helpers call with.
var ctx = context.Background()

func req[T any](m *T) *connect.Request[T] { return connect.NewRequest(m) }

func AcceptInvitation(s *servertest.Server, token, pw string) (*quartersv1.Session, error) {
	resp, err := s.As("", "", "").Members.AcceptInvitation(ctx, req(&quartersv1.AcceptInvitationRequest{Token: token, Password: pw}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetSession(), nil
}

// anon is AuthService without a credential, at baseURL.
func Anon(s *servertest.Server, baseURL string, opts ...connect.ClientOption) *servertest.Tenant {
	return s.AsAt(baseURL, "", "", "", opts...)
}

// attackerTenant signs up the attacker's own tenant and returns clients
// that call with its sign-up key (an admin key).
func AttackerTenant(t *testing.T, s *servertest.Server, slug string) *servertest.Tenant {
	t.Helper()
	resp, err := s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{
		Slug: slug, Name: "Evil", OwnerEmail: AttackerEmail, OwnerPassword: AttackerOwnPwd,
	}))
	require.NoError(t, err)
	evil := s.As(resp.Msg.GetTenant().GetId(), slug, resp.Msg.GetApiKeySecret())
	s.Unthrottle(t, evil.ID)
	return evil
}

func CreateDocument(t *testing.T, tn *servertest.Tenant, projectID, title string) *quartersv1.Document {
	t.Helper()
	resp, err := tn.Documents.CreateDocument(ctx, req(&quartersv1.CreateDocumentRequest{ProjectId: projectID, Title: title, Content: "text of " + title}))
	require.NoError(t, err)
	require.Equal(t, title, resp.Msg.GetDocument().GetTitle())
	return resp.Msg.GetDocument()
}

func CreateKey(t *testing.T, tn *servertest.Tenant, name string, role quartersv1.Role) (*quartersv1.ApiKey, string) {
	t.Helper()
	resp, err := tn.Auth.CreateApiKey(ctx, req(&quartersv1.CreateApiKeyRequest{Name: name, Role: role}))
	require.NoError(t, err)
	require.Equal(t, role, resp.Msg.GetApiKey().GetRole())
	return resp.Msg.GetApiKey(), resp.Msg.GetSecret()
}

func CreateProject(t *testing.T, tn *servertest.Tenant, name string) *quartersv1.Project {
	t.Helper()
	resp, err := tn.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: name, Description: "about " + name}))
	require.NoError(t, err)
	require.Equal(t, name, resp.Msg.GetProject().GetName())
	return resp.Msg.GetProject()
}

func DocIDs(ds []*quartersv1.Document) []string {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.GetId()
	}
	return ids
}

// errorInfo returns the ErrorInfo detail of err, if any.
func ErrorInfo(t *testing.T, cerr *connect.Error) *errdetails.ErrorInfo {
	t.Helper()
	for _, d := range cerr.Details() {
		v, err := d.Value()
		require.NoError(t, err)
		if info, ok := v.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	t.Fatalf("no ErrorInfo detail in %v", cerr)
	return nil
}

// invitationMail waits for the next invitation mailed to email and
// returns its token.
func InvitationMail(t *testing.T, s *servertest.Server, email string) string {
	t.Helper()
	_, token := s.Mailbox.Wait(t, email, notify.SubjectInvitation)
	require.Regexp(t, `^qi_`, token)
	return token
}

// invite invites email with role as by, and returns the token mailed to
// email (never returned to by).
func Invite(t *testing.T, by *servertest.Tenant, email string, role quartersv1.Role) string {
	t.Helper()
	_, token := InviteFull(t, by, email, role)
	return token
}

// inviteFull invites email with role as by and returns the invitation and
// the token mailed to email: the response carries none.
func InviteFull(t *testing.T, by *servertest.Tenant, email string, role quartersv1.Role) (*quartersv1.Invitation, string) {
	t.Helper()
	resp, err := by.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: email, Role: role}))
	require.NoError(t, err)
	require.Equal(t, email, resp.Msg.GetInvitation().GetEmail())
	require.Equal(t, role, resp.Msg.GetInvitation().GetRole())
	require.Empty(t, resp.Msg.GetToken(), "the token goes to the invitee's mailbox only")
	return resp.Msg.GetInvitation(), InvitationMail(t, by.Server, email)
}

// join invites email into tn (as tn's owner) with role and accepts it as a
// new user, returning the new member's session.
func Join(t *testing.T, s *servertest.Server, tn *servertest.Tenant, email string, role quartersv1.Role) *quartersv1.Session {
	t.Helper()
	sess, err := AcceptInvitation(s, Invite(t, s.AsUser(tn.Owner), email, role), MemberPassword)
	require.NoError(t, err)
	require.Equal(t, role, sess.GetRole())
	return sess
}

func ListProjects(tn *servertest.Tenant) error {
	_, err := tn.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	return err
}

// mangle changes a secret's last character (to another one, always).
func Mangle(secret string) string {
	last := "a"
	if secret[len(secret)-1] == 'a' {
		last = "b"
	}
	return secret[:len(secret)-1] + last
}

func Mask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

// MemberPassword is the password invitees in these tests choose.
const MemberPassword = "member password 123"

// members lists tn's members as email → role, checking every page.
func Members(t *testing.T, tn *servertest.Tenant) map[string]quartersv1.Role {
	t.Helper()
	out := map[string]quartersv1.Role{}
	token := ""
	for {
		resp, err := tn.Members.ListMembers(ctx, req(&quartersv1.ListMembersRequest{PageToken: token}))
		require.NoError(t, err)
		for _, m := range resp.Msg.GetMembers() {
			out[m.GetUser().GetEmail()] = m.GetRole()
		}
		if token = resp.Msg.GetNextPageToken(); token == "" {
			return out
		}
	}
}

func MustSignIn(t *testing.T, s *servertest.Server, email, password, tenantSel string) *quartersv1.Session {
	t.Helper()
	resp, err := Anon(s, s.URL).Auth.SignIn(ctx, req(&quartersv1.SignInRequest{Email: email, Password: password, Tenant: tenantSel}))
	require.NoError(t, err)
	return resp.Msg.GetSession()
}

// ownerCount runs a count query as the database owner (no RLS).
func OwnerCount(t *testing.T, s *servertest.Server, sql string, args ...any) int {
	t.Helper()
	conn, err := pgx.Connect(ctx, s.OwnerURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, sql, args...).Scan(&n))
	return n
}

func RemoveMember(tn *servertest.Tenant, userID string) error {
	_, err := tn.Members.RemoveMember(ctx, req(&quartersv1.RemoveMemberRequest{UserId: userID}))
	return err
}

// requireCode asserts err is a Connect error with code, and returns it.
func RequireCode(t *testing.T, err error, code connect.Code) *connect.Error {
	t.Helper()
	require.Error(t, err)
	var cerr *connect.Error
	require.True(t, errors.As(err, &cerr), "not a connect error: %v", err)
	require.Equal(t, code, cerr.Code(), "message: %s", cerr.Message())
	return cerr
}

func RequireMemberQuota(t *testing.T, err error, limit int64) {
	t.Helper()
	cerr := RequireCode(t, err, connect.CodeResourceExhausted)
	require.Contains(t, cerr.Message(), fmt.Sprintf("allows %d members", limit))
	var qf *errdetails.QuotaFailure
	for _, d := range cerr.Details() {
		if v, err := d.Value(); err == nil {
			if q, ok := v.(*errdetails.QuotaFailure); ok {
				qf = q
			}
		}
	}
	require.NotNil(t, qf, "no QuotaFailure detail")
	require.Equal(t, "max_members", qf.GetViolations()[0].GetQuotaId())
	require.Equal(t, limit, qf.GetViolations()[0].GetQuotaValue())
}

// requireNoSignIn: the password signs the victim in to none of the
// tenants, with the one answer of a wrong password.
func RequireNoSignIn(t *testing.T, s *servertest.Server, email, pw string, tenants ...string) {
	t.Helper()
	for _, tn := range tenants {
		sess, err := SignIn(s, email, pw, tn)
		require.Nil(t, sess, "signed in as %s to %s with the attacker's password", email, tn)
		cerr := RequireCode(t, err, connect.CodeUnauthenticated)
		require.Contains(t, cerr.Message(), "email or password is wrong", tn)
	}
}

func SetMaxMembers(t *testing.T, s *servertest.Server, tenantID string, n int) {
	t.Helper()
	s.Exec(t, tenantID, `insert into tenant_overrides (tenant_id, max_members) values ($1, $2)
		on conflict (tenant_id) do update set max_members = $2`, tenantID, n)
}

func SetRole(tn *servertest.Tenant, userID string, role quartersv1.Role) error {
	_, err := tn.Members.UpdateMemberRole(ctx, req(&quartersv1.UpdateMemberRoleRequest{UserId: userID, Role: role}))
	return err
}

func SignIn(s *servertest.Server, email, pw, tenantSlug string) (*quartersv1.Session, error) {
	resp, err := s.As("", "", "").Auth.SignIn(ctx, req(&quartersv1.SignInRequest{Email: email, Password: pw, Tenant: tenantSlug}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetSession(), nil
}

// signUpRoomy signs up a tenant whose limits are out of the way: room for
// 50 members and no rate limit to speak of.
func SignUpRoomy(t *testing.T, s *servertest.Server) *servertest.Tenant {
	t.Helper()
	a := s.SignUp(t)
	SetMaxMembers(t, s, a.ID, 50)
	s.Unthrottle(t, a.ID)
	return a
}

// signUpVictim signs up globex-x the way README's globex does: no owner
// password. The victim has an account without a password.
func SignUpVictim(t *testing.T, s *servertest.Server) {
	t.Helper()
	_, err := s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{
		Slug: "globex-x", Name: "Globex", OwnerEmail: VictimEmail,
	}))
	require.NoError(t, err)
}

// UsedInvitation is AcceptInvitation's one answer for a token that cannot
// be used: unknown, expired, used or revoked.
const UsedInvitation = "invitation is invalid, expired or already used; ask for a new one"

// violations returns the field paths protovalidate reported in err.
func Violations(t *testing.T, cerr *connect.Error) []string {
	t.Helper()
	var paths []string
	for _, d := range cerr.Details() {
		v, err := d.Value()
		require.NoError(t, err)
		if vs, ok := v.(*validate.Violations); ok {
			for _, viol := range vs.GetViolations() {
				p := ""
				for i, e := range viol.GetField().GetElements() {
					if i > 0 {
						p += "."
					}
					p += e.GetFieldName()
				}
				if p == "" {
					p = viol.GetRuleId()
				}
				paths = append(paths, p)
			}
		}
	}
	return paths
}
