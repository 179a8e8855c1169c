package authsvc_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/redistest"
	"github.com/quarters-dev/quarters/internal/servertest"
	"github.com/quarters-dev/quarters/internal/tenant"
)

func TestAuthentication(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	unknown, _, _ := auth.NewAPIKey() // well-formed, valid checksum, never stored
	mistyped := []byte(a.Key)
	mistyped[10] ^= 1 // one character off: the checksum catches it
	list := func(key string) error {
		_, err := s.As(a.ID, a.Slug, key).Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
		return err
	}

	cerr := apitest.RequireCode(t, list(""), connect.CodeUnauthenticated)
	require.Contains(t, cerr.Message(), "missing credential")

	// A bearer that is neither an API key nor shaped like a JWT is called
	// malformed, not an expired token; a JWT-shaped one is a bad token.
	for _, bad := range []string{"garbage", "hello", "a.b", "a.b.c.d", "ey$.x.y"} {
		require.Equal(t, "malformed credential: expected an API key (qk_…) or an access token (JWT)",
			apitest.RequireCode(t, list(bad), connect.CodeUnauthenticated).Message(), bad)
	}
	require.Equal(t, "invalid or expired access token: refresh it or sign in again",
		apitest.RequireCode(t, list("eyJhbGciOi.eyJzdWIi.c2ln"), connect.CodeUnauthenticated).Message())
	// Whitespace around the credential is not part of it: "Bearer  qk_…"
	// (two spaces) is the API key.
	for _, padded := range []string{" " + a.Key, a.Key + " ", "\t" + a.Key} {
		require.NoError(t, list(padded), "%q", padded)
	}

	// Every kind of bad key gets the same answer.
	var msgs []string
	for _, key := range []string{"qk_" + strings.Repeat("a", 39), "qk_short", string(mistyped), unknown} {
		msgs = append(msgs, apitest.RequireCode(t, list(key), connect.CodeUnauthenticated).Message())
	}
	for _, m := range msgs {
		require.Equal(t, "invalid API key", m)
	}

	// Wrong scheme.
	badScheme := func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(c2 context.Context, r connect.AnyRequest) (connect.AnyResponse, error) {
			r.Header().Set("Authorization", "Basic "+a.Key)
			return next(c2, r)
		}
	}
	_, err := s.As(a.ID, a.Slug, "", connect.WithInterceptors(connect.UnaryInterceptorFunc(badScheme))).Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)

	require.NoError(t, list(a.Key))

	// A key revoked (and its tenant invalidated, as RevokeApiKey and the
	// platform do) stops working at once, though it was cached.
	s.Exec(t, a.ID, "update api_keys set revoke_time = now() where tenant_id = $1", a.ID)
	require.Equal(t, "invalid API key", apitest.RequireCode(t, list(a.Key), connect.CodeUnauthenticated).Message())

	// An expired key too.
	b := s.SignUp(t)
	owner := ownerConn(t, s)
	_, err = owner.Exec(ctx, "update api_keys set expire_time = now() - interval '1 second' where tenant_id = $1", b.ID)
	require.NoError(t, err)
	_, err = b.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)
}

// TestCachedKeyExpires: a cached key is not served past its expire_time,
// even with no invalidation.
func TestCachedKeyExpires(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	resp, err := a.Auth.CreateApiKey(ctx, req(&quartersv1.CreateApiKeyRequest{
		Name: "short", Role: quartersv1.Role_ROLE_MEMBER, ExpireTime: timestamppb.New(time.Now().Add(1500 * time.Millisecond)),
	}))
	require.NoError(t, err)
	short := s.As(a.ID, a.Slug, resp.Msg.GetSecret())
	_, err = short.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err) // now cached
	time.Sleep(time.Until(resp.Msg.GetApiKey().GetExpireTime().AsTime().Add(50 * time.Millisecond)))
	_, err = short.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	apitest.RequireCode(t, err, connect.CodeUnauthenticated)
}

func TestSuspendedTenant(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	s.Exec(t, a.ID, "update tenants set status = 'suspended' where id = $1", a.ID)
	_, err := a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	cerr := apitest.RequireCode(t, err, connect.CodePermissionDenied)
	require.Equal(t, "TENANT_SUSPENDED", apitest.ErrorInfo(t, cerr).GetReason())
}

func TestTenantSelectors(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a, b := s.SignUp(t), s.SignUp(t)
	getAs := func(tn *servertest.Tenant) error {
		_, err := tn.Tenants.GetTenant(ctx, req(&quartersv1.GetTenantRequest{}))
		return err
	}
	withHeader := func(v string) *servertest.Tenant {
		return s.As(a.ID, a.Slug, a.Key, connect.WithInterceptors(servertest.Header(tenant.HeaderName, v)))
	}

	// Selectors that agree with the credential pass.
	require.NoError(t, getAs(withHeader(a.ID)))
	require.NoError(t, getAs(withHeader(a.Slug)))
	require.NoError(t, getAs(s.AsAt(s.SubdomainURL(a.Slug), a.ID, a.Slug, a.Key)))

	// Any disagreement is PERMISSION_DENIED with reason TENANT_MISMATCH.
	for name, tn := range map[string]*servertest.Tenant{
		"header id":         withHeader(b.ID),
		"header slug":       withHeader(b.Slug),
		"subdomain":         s.AsAt(s.SubdomainURL(b.Slug), a.ID, a.Slug, a.Key),
		"unknown subdomain": s.AsAt(s.SubdomainURL("nobody"), a.ID, a.Slug, a.Key),
	} {
		t.Run(name, func(t *testing.T) {
			cerr := apitest.RequireCode(t, getAs(tn), connect.CodePermissionDenied)
			info := apitest.ErrorInfo(t, cerr)
			require.Equal(t, "TENANT_MISMATCH", info.GetReason())
			require.Equal(t, "quarters.dev", info.GetDomain())
		})
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	signUp := func(slug, email string) error {
		_, err := s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{Slug: slug, Name: "n", OwnerEmail: email}))
		return err
	}
	cases := []struct {
		name  string
		err   error
		field string
	}{
		{"uppercase slug", signUp("Acme", "a@b.example"), "slug"},
		{"reserved slug", signUp("www", "a@b.example"), "slug"},
		{"short slug", signUp("ab", "a@b.example"), "slug"},
		{"trailing hyphen", signUp("acme-", "a@b.example"), "slug"},
		{"bad email", signUp("acme", "not-an-email"), "owner_email"},
		{"bad id", func() error {
			_, err := a.Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: "42"}))
			return err
		}(), "id"},
		{"page size", func() error {
			_, err := a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{PageSize: 101}))
			return err
		}(), "page_size"},
		{"empty name", func() error {
			_, err := a.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{}))
			return err
		}(), "name"},
		{"mask outside updatable fields", func() error {
			_, err := a.Projects.UpdateProject(ctx, req(&quartersv1.UpdateProjectRequest{
				Project: &quartersv1.Project{Id: "00000000-0000-4000-8000-000000000000"}, UpdateMask: apitest.Mask("create_time"),
			}))
			return err
		}(), "update_mask"},
		{"empty mask", func() error {
			_, err := a.Documents.UpdateDocument(ctx, req(&quartersv1.UpdateDocumentRequest{
				Document: &quartersv1.Document{Id: "00000000-0000-4000-8000-000000000000"}, UpdateMask: apitest.Mask(),
			}))
			return err
		}(), "update_mask"},
		{"blank title when masked", func() error {
			_, err := a.Documents.UpdateDocument(ctx, req(&quartersv1.UpdateDocumentRequest{
				Document: &quartersv1.Document{Id: "00000000-0000-4000-8000-000000000000"}, UpdateMask: apitest.Mask("title"),
			}))
			return err
		}(), "document.title"},
		{"bad project filter", func() error {
			_, err := a.Documents.ListDocuments(ctx, req(&quartersv1.ListDocumentsRequest{ProjectId: "x"}))
			return err
		}(), "project_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cerr := apitest.RequireCode(t, c.err, connect.CodeInvalidArgument)
			require.Contains(t, apitest.Violations(t, cerr), c.field, "message: %s", cerr.Message())
		})
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := s.HTTP.Get(s.URL + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
}

func ownerConn(t *testing.T, s *servertest.Server) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, s.OwnerURL)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(ctx) })
	return conn
}

// TestRevokedKeyOnEveryReplica: replicas cache live API keys; revoking one
// on one replica reaches the other's cache through the tenant's pub/sub
// invalidation.
func TestRevokedKeyOnEveryReplica(t *testing.T) {
	t.Parallel()
	rs := redistest.New(t)
	s1 := servertest.NewWith(t, &servertest.Opts{Redis: rs.Options()})
	s2 := servertest.NewWith(t, &servertest.Opts{Redis: rs.Options(), Share: s1})
	a := s1.SignUp(t)
	k, secret := apitest.CreateKey(t, a, "ci", quartersv1.Role_ROLE_MEMBER)
	list := func() error {
		_, err := s2.As(a.ID, a.Slug, secret).Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
		return err
	}
	require.NoError(t, list(), "replica 2 now caches the key")
	_, err := a.Auth.RevokeApiKey(ctx, req(&quartersv1.RevokeApiKeyRequest{Id: k.GetId()}))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return connect.CodeOf(list()) == connect.CodeUnauthenticated },
		time.Second, 10*time.Millisecond, "replica 2 still accepts the revoked key")
}
