package tenantsvc_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db/dbtest"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/export"
	"github.com/quarters-dev/quarters/internal/servertest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

var ctx = context.Background()

func req[T any](m *T) *connect.Request[T] { return connect.NewRequest(m) }

// TestExportTenant: the owner exports, the job writes the archive, and
// the link downloads it: the digest and manifest match, the rows are the
// tenant's. An admin may not export; another tenant sees no export of
// the first's; a wrong, moved or expired link is 404.
func TestExportTenant(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a, b := s.SignUp(t), s.SignUp(t)
	_, err := a.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: "exported"}))
	require.NoError(t, err)
	_, err = b.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: "not exported"}))
	require.NoError(t, err)

	_, err = a.Tenants.ExportTenant(ctx, req(&quartersv1.ExportTenantRequest{}))
	apitest.RequireCode(t, err, connect.CodePermissionDenied) // the sign-up key is an admin's

	events, cancel := s.Jobs.Subscribe(river.EventKindJobCompleted)
	defer cancel()
	owner, ownerB := s.AsUser(a.Owner), s.AsUser(b.Owner)
	started, err := owner.Tenants.ExportTenant(ctx, req(&quartersv1.ExportTenantRequest{}))
	require.NoError(t, err)
	require.False(t, started.Msg.GetExport().GetDone())
	id := started.Msg.GetExport().GetId()
	for done := false; !done; {
		select {
		case e := <-events:
			done = e.Job.Kind == export.Args{}.Kind()
		case <-time.After(time.Minute):
			t.Fatal("the export job did not complete")
		}
	}

	got, err := owner.Tenants.GetTenantExport(ctx, req(&quartersv1.GetTenantExportRequest{ExportId: id}))
	require.NoError(t, err)
	e := got.Msg.GetExport()
	require.True(t, e.GetDone())
	require.NotEmpty(t, e.GetDownloadPath())
	require.True(t, e.GetDownloadExpireTime().AsTime().After(time.Now()))
	tables := map[string]int64{}
	for _, tb := range e.GetTables() {
		tables[tb.GetName()] = tb.GetRows()
	}
	require.EqualValues(t, 1, tables["projects"])
	require.EqualValues(t, 1, tables["tenants"])

	get := func(path string) (int, []byte) {
		resp, err := s.HTTP.Get(s.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, body
	}
	code, body := get(e.GetDownloadPath())
	require.Equal(t, http.StatusOK, code)
	sum := sha256.Sum256(body)
	require.Equal(t, e.GetSha256(), hex.EncodeToString(sum[:]))
	gz, err := gzip.NewReader(bytes.NewReader(body))
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		files[h.Name] = string(b)
	}
	var m export.Manifest
	require.NoError(t, json.Unmarshal([]byte(files[export.ManifestFile]), &m))
	require.Len(t, m.Tables, len(e.GetTables()))
	require.Contains(t, files["projects.ndjson"], `"name":"exported"`)
	for _, f := range files {
		require.NotContains(t, f, "not exported")
		require.NotContains(t, f, b.ID)
	}

	// Another tenant: no such export, and its ids in the link are no key.
	_, err = ownerB.Tenants.GetTenantExport(ctx, req(&quartersv1.GetTenantExportRequest{ExportId: id}))
	apitest.RequireCode(t, err, connect.CodeNotFound)
	path := e.GetDownloadPath()
	token := path[strings.Index(path, "?token=")+len("?token="):]
	// A token with its first character changed (to one it did not have).
	other := "x"
	if token[0] == 'x' {
		other = "y"
	}
	for _, bad := range []string{
		strings.Replace(path, a.ID, b.ID, 1),
		strings.Replace(path, id, uuid.NewString(), 1),
		strings.TrimSuffix(path, token) + other + token[1:],
		strings.TrimSuffix(path, "?token="+token),
	} {
		code, _ := get(bad)
		require.Equal(t, http.StatusNotFound, code, bad)
	}

	// A fresh link replaces the last; an expired one is refused.
	again, err := owner.Tenants.GetTenantExport(ctx, req(&quartersv1.GetTenantExportRequest{ExportId: id}))
	require.NoError(t, err)
	code, _ = get(path)
	require.Equal(t, http.StatusNotFound, code, "the earlier link")
	s.Exec(t, a.ID, "update tenant_exports set download_expire_time = now() - interval '1 second' where id = $1", id)
	code, _ = get(again.Msg.GetExport().GetDownloadPath())
	require.Equal(t, http.StatusNotFound, code, "the expired link")
}
