package router_test

import (
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// TestIsolation: tenant B using tenant A's ids gets exactly what it gets for
// ids that never existed (same code, same message), A's rows are unchanged,
// and B's lists never contain A's rows.
func TestIsolation(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a, b := s.SignUp(t), s.SignUp(t)
	ap := apitest.CreateProject(t, a, "a-secret")
	ad := apitest.CreateDocument(t, a, ap.GetId(), "a-doc")
	bp := apitest.CreateProject(t, b, "b-own")
	bd := apitest.CreateDocument(t, b, bp.GetId(), "b-doc")
	missing := uuid.NewString()

	// sameAsMissing calls fn with A's id and with a made-up one and requires
	// identical NOT_FOUND errors.
	sameAsMissing := func(t *testing.T, aID string, fn func(id string) error) {
		t.Helper()
		errA := apitest.RequireCode(t, fn(aID), connect.CodeNotFound)
		errMissing := apitest.RequireCode(t, fn(missing), connect.CodeNotFound)
		require.Equal(t, errMissing.Message(), errA.Message())
		require.Equal(t, len(errMissing.Details()), len(errA.Details()))
	}

	cases := map[string]struct {
		aID string
		fn  func(id string) error
	}{
		"GetProject": {ap.GetId(), func(id string) error {
			_, err := b.Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: id}))
			return err
		}},
		"UpdateProject": {ap.GetId(), func(id string) error {
			_, err := b.Projects.UpdateProject(ctx, req(&quartersv1.UpdateProjectRequest{
				Project:    &quartersv1.Project{Id: id, Name: "pwned"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
			}))
			return err
		}},
		"DeleteProject": {ap.GetId(), func(id string) error {
			_, err := b.Projects.DeleteProject(ctx, req(&quartersv1.DeleteProjectRequest{Id: id}))
			return err
		}},
		"GetDocument": {ad.GetId(), func(id string) error {
			_, err := b.Documents.GetDocument(ctx, req(&quartersv1.GetDocumentRequest{Id: id}))
			return err
		}},
		"UpdateDocument": {ad.GetId(), func(id string) error {
			_, err := b.Documents.UpdateDocument(ctx, req(&quartersv1.UpdateDocumentRequest{
				Document:   &quartersv1.Document{Id: id, Title: "pwned", Content: "pwned"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"title", "content"}},
			}))
			return err
		}},
		"DeleteDocument": {ad.GetId(), func(id string) error {
			_, err := b.Documents.DeleteDocument(ctx, req(&quartersv1.DeleteDocumentRequest{Id: id}))
			return err
		}},
		"CreateDocument in A's project": {ap.GetId(), func(id string) error {
			_, err := b.Documents.CreateDocument(ctx, req(&quartersv1.CreateDocumentRequest{ProjectId: id, Title: "planted"}))
			return err
		}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) { sameAsMissing(t, c.aID, c.fn) })
	}

	// A's rows are exactly as created.
	gotP, err := a.Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: ap.GetId()}))
	require.NoError(t, err)
	require.True(t, proto.Equal(ap, gotP.Msg.GetProject()), "project changed: %v", gotP.Msg.GetProject())
	gotD, err := a.Documents.GetDocument(ctx, req(&quartersv1.GetDocumentRequest{Id: ad.GetId()}))
	require.NoError(t, err)
	require.True(t, proto.Equal(ad, gotD.Msg.GetDocument()), "document changed: %v", gotD.Msg.GetDocument())
	all, err := a.Documents.ListDocuments(ctx, req(&quartersv1.ListDocumentsRequest{}))
	require.NoError(t, err)
	require.Equal(t, []string{ad.GetId()}, apitest.DocIDs(all.Msg.GetDocuments()), "B planted a document in A")

	// B's lists hold only B's rows, also when filtering by A's project.
	bProjects, err := b.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
	require.Len(t, bProjects.Msg.GetProjects(), 1)
	require.Equal(t, bp.GetId(), bProjects.Msg.GetProjects()[0].GetId())
	bDocs, err := b.Documents.ListDocuments(ctx, req(&quartersv1.ListDocumentsRequest{}))
	require.NoError(t, err)
	require.Equal(t, []string{bd.GetId()}, apitest.DocIDs(bDocs.Msg.GetDocuments()))
	viaA, err := b.Documents.ListDocuments(ctx, req(&quartersv1.ListDocumentsRequest{ProjectId: ap.GetId()}))
	require.NoError(t, err)
	require.Empty(t, viaA.Msg.GetDocuments())

	// GetTenant describes the caller, never the other tenant.
	bt, err := b.Tenants.GetTenant(ctx, req(&quartersv1.GetTenantRequest{}))
	require.NoError(t, err)
	require.Equal(t, b.ID, bt.Msg.GetTenant().GetId())
}

// TestIsolationPageToken: a page token from tenant A, used by tenant B,
// returns nothing of A's.
func TestIsolationPageToken(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a, b := s.SignUp(t), s.SignUp(t)
	s.SetPlan(t, a.ID, "pro") // six projects: more than the free plan allows
	aIDs := map[string]bool{}
	for range 4 {
		aIDs[apitest.CreateProject(t, a, "a").GetId()] = true
	}
	// B's projects are older than A's cursor, so the token selects them.
	bOld := apitest.CreateProject(t, b, "b-old")
	for range 2 {
		aIDs[apitest.CreateProject(t, a, "a").GetId()] = true
	}
	first, err := a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{PageSize: 2}))
	require.NoError(t, err)
	token := first.Msg.GetNextPageToken()
	require.NotEmpty(t, token)

	resp, err := b.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{PageSize: 100, PageToken: token}))
	require.NoError(t, err)
	for _, p := range resp.Msg.GetProjects() {
		require.False(t, aIDs[p.GetId()], "tenant B saw A's project %s", p.GetId())
	}
	require.Len(t, resp.Msg.GetProjects(), 1)
	require.Equal(t, bOld.GetId(), resp.Msg.GetProjects()[0].GetId())
}
