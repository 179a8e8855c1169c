package router_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// TestConcurrentTenants: many goroutines across many tenants share a small
// pool (8 connections); every response holds only its caller's rows. Run
// with -race. A tenant id leaking from one pooled transaction into the next
// would show up here as a foreign row.
func TestConcurrentTenants(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	const tenants, workers, rounds = 8, 32, 15
	type owned struct {
		tn       *servertest.Tenant
		projects map[string]bool
		docs     map[string]bool
	}
	all := make([]owned, tenants)
	for i := range all {
		tn := s.SignUp(t)
		s.Unthrottle(t, tn.ID)
		o := owned{tn: tn, projects: map[string]bool{}, docs: map[string]bool{}}
		for j := range 3 {
			p := apitest.CreateProject(t, tn, fmt.Sprintf("t%d-p%d", i, j))
			o.projects[p.GetId()] = true
			o.docs[apitest.CreateDocument(t, tn, p.GetId(), "d").GetId()] = true
		}
		all[i] = o
	}

	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				o := all[(w+r)%tenants]
				ps, err := o.tn.Projects.ListProjects(ctx, req(&quartersv1.ListProjectsRequest{}))
				if err != nil {
					errs <- err
					continue
				}
				if len(ps.Msg.GetProjects()) != len(o.projects) {
					errs <- fmt.Errorf("tenant %s: %d projects, want %d", o.tn.Slug, len(ps.Msg.GetProjects()), len(o.projects))
				}
				for _, p := range ps.Msg.GetProjects() {
					if !o.projects[p.GetId()] {
						errs <- fmt.Errorf("tenant %s saw foreign project %s", o.tn.Slug, p.GetId())
					}
				}
				ds, err := o.tn.Documents.ListDocuments(ctx, req(&quartersv1.ListDocumentsRequest{}))
				if err != nil {
					errs <- err
					continue
				}
				for _, d := range ds.Msg.GetDocuments() {
					if !o.docs[d.GetId()] {
						errs <- fmt.Errorf("tenant %s saw foreign document %s", o.tn.Slug, d.GetId())
					}
				}
				me, err := o.tn.Tenants.GetTenant(ctx, req(&quartersv1.GetTenantRequest{}))
				if err != nil {
					errs <- err
				} else if me.Msg.GetTenant().GetId() != o.tn.ID {
					errs <- fmt.Errorf("tenant %s got tenant %s", o.tn.ID, me.Msg.GetTenant().GetId())
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
