package dbtest

import (
	"context"
	"os"
	"testing"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/db/embedded"
)

// Private is a migrated PostgreSQL cluster of one test's own, which the
// test may stop and start again: for outage tests. The cluster NewURLs
// uses cannot be stopped, since every test of the binary shares it.
// Starting one takes a few seconds (initdb and the migrations).
type Private struct {
	t testing.TB
	e *embedded.Cluster
	// AppURL connects as quarters_app, OwnerURL as the schema owner, to
	// the cluster's migrated database.
	AppURL, OwnerURL string
}

// NewPrivate starts a private cluster for t, with a migrated database;
// it is removed when t ends. Without PostgreSQL binaries it fails t.
func NewPrivate(t testing.TB) *Private {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	// Not t.TempDir(): see setup (the postgres account must reach it).
	dir, err := os.MkdirTemp("", "qpgpriv")
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	e, err := embedded.Start(ctx, embedded.Opts{DataDir: dir, Ephemeral: true})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("dbtest: private cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Stop(context.Background()); err != nil {
			t.Errorf("dbtest: stop private cluster: %v", err)
		}
		os.RemoveAll(dir)
	})
	const name = "quarters"
	if err := e.EnsureDatabase(ctx, name); err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	if err := db.Migrate(ctx, e.OwnerURL(name)); err != nil {
		t.Fatalf("dbtest: migrate private cluster: %v", err)
	}
	return &Private{t: t, e: e, AppURL: e.AppURL(name), OwnerURL: e.OwnerURL(name)}
}

// Stop shuts the server down (clients are disconnected; new connections
// fail) until Start.
func (p *Private) Stop() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := p.e.Halt(ctx); err != nil {
		p.t.Fatalf("dbtest: %v", err)
	}
}

// Start brings a stopped server back, on the same URLs.
func (p *Private) Start() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := p.e.Resume(ctx); err != nil {
		p.t.Fatalf("dbtest: %v", err)
	}
}
