// Command quickstart signs up a tenant on a Quarters server, creates a
// project and a document in it, and lists the tenant's documents, using the
// Go SDK. Start a server first (go run ./cmd/quarters), then:
//
//	go run ./sdk/go/examples/quickstart [-url http://localhost:8080]
//
// The URL defaults to $QUARTERS_URL, else http://localhost:8080.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"

	"connectrpc.com/connect"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	quarters "github.com/quarters-dev/quarters/sdk/go"
)

func main() {
	baseURL := flag.String("url", envOr("QUARTERS_URL", "http://localhost:8080"), "Quarters server base URL")
	flag.Parse()
	if err := run(context.Background(), *baseURL); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, baseURL string) error {
	// Sign-up is public: no credential yet. A random slug lets the example
	// run more than once against the same server.
	slug := "quickstart-" + strings.ToLower(rand.Text()[:8])
	signup, err := quarters.NewClient(baseURL).Tenants.CreateTenant(ctx, connect.NewRequest(&quartersv1.CreateTenantRequest{
		Slug: slug, Name: "Quickstart", OwnerEmail: "owner@example.com",
	}))
	if err != nil {
		return fmt.Errorf("sign up: %w", err)
	}
	fmt.Printf("signed up tenant %s (%s), plan %s\n", signup.Msg.GetTenant().GetSlug(), signup.Msg.GetTenant().GetId(), signup.Msg.GetTenant().GetPlan())

	// From here on, every call carries the tenant's API key.
	c := quarters.NewClient(baseURL, quarters.WithAPIKey(signup.Msg.GetApiKeySecret()))
	project, err := c.Projects.CreateProject(ctx, connect.NewRequest(&quartersv1.CreateProjectRequest{Name: "Launch plan"}))
	if err != nil {
		return fmt.Errorf("create project: %w", err)
	}
	_, err = c.Documents.CreateDocument(ctx, connect.NewRequest(&quartersv1.CreateDocumentRequest{
		ProjectId: project.Msg.GetProject().GetId(), Title: "Kickoff", Content: "Ship it.",
	}))
	if err != nil {
		return fmt.Errorf("create document: %w", err)
	}
	docs, err := c.Documents.ListDocuments(ctx, connect.NewRequest(&quartersv1.ListDocumentsRequest{}))
	if err != nil {
		return fmt.Errorf("list documents: %w", err)
	}
	for _, d := range docs.Msg.GetDocuments() {
		fmt.Printf("document %s %q in project %s\n", d.GetId(), d.GetTitle(), d.GetProjectId())
	}

	// Errors carry details the SDK reads for you.
	_, err = c.Projects.GetProject(ctx, connect.NewRequest(&quartersv1.GetProjectRequest{Id: "00000000-0000-4000-8000-000000000000"}))
	fmt.Println("unknown project is not found:", quarters.IsNotFound(err))
	_, err = c.Projects.CreateProject(ctx, connect.NewRequest(&quartersv1.CreateProjectRequest{}))
	for _, v := range quarters.Violations(err) {
		fmt.Printf("invalid %s: %s\n", v.Field, v.Message)
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
