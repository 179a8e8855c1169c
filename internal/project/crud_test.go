package project_test

import (
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/servertest"
)

func TestSignUp(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	resp, err := s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{
		Slug: "acme", Name: "Acme Inc", OwnerEmail: "ceo@acme.example",
	}))
	require.NoError(t, err)
	tn, key := resp.Msg.GetTenant(), resp.Msg.GetApiKey()
	require.Equal(t, "acme", tn.GetSlug())
	require.Equal(t, "Acme Inc", tn.GetName())
	require.Equal(t, "free", tn.GetPlan())
	require.Equal(t, quartersv1.TenantStatus_TENANT_STATUS_ACTIVE, tn.GetStatus())
	require.Equal(t, "ceo@acme.example", tn.GetOwnerEmail())
	require.Equal(t, quartersv1.Role_ROLE_ADMIN, key.GetRole())
	secret := resp.Msg.GetApiKeySecret()
	require.Regexp(t, `^qk_[a-z2-7]{39}$`, secret)
	require.True(t, len(key.GetPrefix()) >= 6 && secret[:len(key.GetPrefix())] == key.GetPrefix())

	// The key works, and GetTenant describes the caller's tenant.
	me, err := s.As(tn.GetId(), "acme", secret).Tenants.GetTenant(ctx, req(&quartersv1.GetTenantRequest{}))
	require.NoError(t, err)
	require.Equal(t, tn.GetId(), me.Msg.GetTenant().GetId())

	// A taken slug is ALREADY_EXISTS and leaves nothing behind.
	_, err = s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{
		Slug: "acme", Name: "Other", OwnerEmail: "x@other.example",
	}))
	cerr := apitest.RequireCode(t, err, connect.CodeAlreadyExists)
	require.Contains(t, cerr.Message(), `"acme" is taken`)
	conn, err := pgx.Connect(ctx, s.OwnerURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var tenants, keys int
	require.NoError(t, conn.QueryRow(ctx, "select (select count(*) from tenants), (select count(*) from api_keys)").Scan(&tenants, &keys))
	require.Equal(t, 1, tenants)
	require.Equal(t, 1, keys)
}

func TestProjectLifecycle(t *testing.T) {
	t.Parallel()
	a := servertest.New(t).SignUp(t)

	p := apitest.CreateProject(t, a, "Apollo")
	require.NoError(t, uuid.Validate(p.GetId()))
	require.Equal(t, "about Apollo", p.GetDescription())

	got, err := a.Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: p.GetId()}))
	require.NoError(t, err)
	require.Equal(t, p.GetName(), got.Msg.GetProject().GetName())

	// Only masked fields change.
	up, err := a.Projects.UpdateProject(ctx, req(&quartersv1.UpdateProjectRequest{
		Project:    &quartersv1.Project{Id: p.GetId(), Name: "Artemis", Description: "ignored"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
	}))
	require.NoError(t, err)
	require.Equal(t, "Artemis", up.Msg.GetProject().GetName())
	require.Equal(t, "about Apollo", up.Msg.GetProject().GetDescription())
	require.True(t, up.Msg.GetProject().GetUpdateTime().AsTime().After(p.GetUpdateTime().AsTime()))

	_, err = a.Projects.DeleteProject(ctx, req(&quartersv1.DeleteProjectRequest{Id: p.GetId()}))
	require.NoError(t, err)
	_, err = a.Projects.GetProject(ctx, req(&quartersv1.GetProjectRequest{Id: p.GetId()}))
	cerr := apitest.RequireCode(t, err, connect.CodeNotFound)
	require.Equal(t, "project not found", cerr.Message())
	_, err = a.Projects.DeleteProject(ctx, req(&quartersv1.DeleteProjectRequest{Id: p.GetId()}))
	apitest.RequireCode(t, err, connect.CodeNotFound)
}

func TestDocumentLifecycle(t *testing.T) {
	t.Parallel()
	a := servertest.New(t).SignUp(t)
	p1, p2 := apitest.CreateProject(t, a, "one"), apitest.CreateProject(t, a, "two")
	d1 := apitest.CreateDocument(t, a, p1.GetId(), "d1")
	d2 := apitest.CreateDocument(t, a, p2.GetId(), "d2")
	require.Equal(t, p1.GetId(), d1.GetProjectId())

	// Filtered and unfiltered lists, newest first.
	all, err := a.Documents.ListDocuments(ctx, req(&quartersv1.ListDocumentsRequest{}))
	require.NoError(t, err)
	require.Equal(t, []string{d2.GetId(), d1.GetId()}, apitest.DocIDs(all.Msg.GetDocuments()))
	only1, err := a.Documents.ListDocuments(ctx, req(&quartersv1.ListDocumentsRequest{ProjectId: p1.GetId()}))
	require.NoError(t, err)
	require.Equal(t, []string{d1.GetId()}, apitest.DocIDs(only1.Msg.GetDocuments()))

	up, err := a.Documents.UpdateDocument(ctx, req(&quartersv1.UpdateDocumentRequest{
		Document:   &quartersv1.Document{Id: d1.GetId(), Title: "kept", Content: "new text"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"content"}},
	}))
	require.NoError(t, err)
	require.Equal(t, "d1", up.Msg.GetDocument().GetTitle())
	require.Equal(t, "new text", up.Msg.GetDocument().GetContent())

	// A project that does not exist is NOT_FOUND, by name.
	_, err = a.Documents.CreateDocument(ctx, req(&quartersv1.CreateDocumentRequest{ProjectId: uuid.NewString(), Title: "x"}))
	cerr := apitest.RequireCode(t, err, connect.CodeNotFound)
	require.Equal(t, "project not found", cerr.Message())

	// Deleting a document, then a project with its documents.
	_, err = a.Documents.DeleteDocument(ctx, req(&quartersv1.DeleteDocumentRequest{Id: d1.GetId()}))
	require.NoError(t, err)
	_, err = a.Documents.GetDocument(ctx, req(&quartersv1.GetDocumentRequest{Id: d1.GetId()}))
	cerr = apitest.RequireCode(t, err, connect.CodeNotFound)
	require.Equal(t, "document not found", cerr.Message())
	_, err = a.Projects.DeleteProject(ctx, req(&quartersv1.DeleteProjectRequest{Id: p2.GetId()}))
	require.NoError(t, err)
	_, err = a.Documents.GetDocument(ctx, req(&quartersv1.GetDocumentRequest{Id: d2.GetId()}))
	apitest.RequireCode(t, err, connect.CodeNotFound)
}

func TestPagination(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	s.SetPlan(t, a.ID, "pro") // more than the free plan's 5 projects
	var want []string
	for i := range 7 {
		p := apitest.CreateProject(t, a, "p"+string(rune('a'+i)))
		want = append([]string{p.GetId()}, want...) // newest first
	}
	var got []string
	token := ""
	pages := 0
	for {
		resp, err := a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{PageSize: 3, PageToken: token}))
		require.NoError(t, err)
		pages++
		for _, p := range resp.Msg.GetProjects() {
			got = append(got, p.GetId())
		}
		token = resp.Msg.GetNextPageToken()
		if token == "" {
			break
		}
		require.Len(t, resp.Msg.GetProjects(), 3)
	}
	require.Equal(t, want, got)
	require.Equal(t, 3, pages)

	// Default page size serves all seven at once.
	resp, err := a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
	require.NoError(t, err)
	require.Len(t, resp.Msg.GetProjects(), 7)
	require.Empty(t, resp.Msg.GetNextPageToken())

	// Garbage tokens, and tokens for another filter, are INVALID_ARGUMENT.
	_, err = a.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{PageToken: "not-a-token"}))
	cerr := apitest.RequireCode(t, err, connect.CodeInvalidArgument)
	require.Contains(t, cerr.Message(), "page_token")
	docs, err := a.Documents.ListDocuments(ctx, req(&quartersv1.ListDocumentsRequest{PageSize: 1}))
	require.NoError(t, err)
	require.Empty(t, docs.Msg.GetNextPageToken()) // no documents yet
	p := apitest.CreateProject(t, a, "docs")
	apitest.CreateDocument(t, a, p.GetId(), "one")
	apitest.CreateDocument(t, a, p.GetId(), "two")
	docs, err = a.Documents.ListDocuments(ctx, req(&quartersv1.ListDocumentsRequest{PageSize: 1}))
	require.NoError(t, err)
	require.NotEmpty(t, docs.Msg.GetNextPageToken())
	_, err = a.Documents.ListDocuments(ctx, req(&quartersv1.ListDocumentsRequest{ProjectId: p.GetId(), PageToken: docs.Msg.GetNextPageToken()}))
	cerr = apitest.RequireCode(t, err, connect.CodeInvalidArgument)
	require.Contains(t, cerr.Message(), "different filter")
}
