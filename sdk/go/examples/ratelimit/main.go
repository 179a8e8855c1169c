// Command ratelimit shows how the Go SDK meets Quarters' rate limit. A new
// tenant (free plan: 100 requests per minute, bursts of 20) calls until it
// is refused; RateLimited says how long to wait. Then a Client with the
// default retry policy makes the next call, which waits that long by
// itself and succeeds. Start a server first (go run ./cmd/quarters),
// then:
//
//	go run ./sdk/go/examples/ratelimit [-url http://localhost:8080]
//
// The URL defaults to $QUARTERS_URL, else http://localhost:8080.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

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
	slug := "ratelimit-" + strings.ToLower(rand.Text()[:8])
	signup, err := quarters.NewClient(baseURL).Tenants.CreateTenant(ctx, connect.NewRequest(&quartersv1.CreateTenantRequest{
		Slug: slug, Name: "Rate limit demo", OwnerEmail: "owner@example.com",
	}))
	if err != nil {
		return fmt.Errorf("sign up: %w", err)
	}
	key := signup.Msg.GetApiKeySecret()

	// Without retries, the refusal comes straight back to the caller.
	noRetry := quarters.NewClient(baseURL, quarters.WithAPIKey(key), quarters.WithoutRetry())
	var wait time.Duration
	for i := 1; ; i++ {
		_, err := noRetry.Projects.ListProjects(ctx, connect.NewRequest(&quartersv1.ListProjectsRequest{}))
		if d, ok := quarters.RateLimited(err); ok {
			fmt.Printf("call %d: rate limited, retry in %v (%v)\n", i, d, err)
			wait = d
			break
		}
		if err != nil {
			return fmt.Errorf("list projects: %w", err)
		}
		if i == 1000 {
			return errors.New("no rate limit after 1000 calls; is QUARTERS_RATE_LIMIT off?")
		}
	}

	// With the default policy, the SDK waits what the server asked for
	// (here well under the policy's 5 s cap) and tries again.
	c := quarters.NewClient(baseURL, quarters.WithAPIKey(key))
	start := time.Now()
	if _, err := c.Projects.ListProjects(ctx, connect.NewRequest(&quartersv1.ListProjectsRequest{})); err != nil {
		return fmt.Errorf("list projects with retries: %w", err)
	}
	fmt.Printf("with retries: succeeded after %v (server asked for %v)\n", time.Since(start).Round(time.Millisecond), wait)
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
