package router_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db/dbtest"
	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// listFixture is a server whose pool is counted on the wire and a tenant
// with 100 documents, and the raw Connect JSON call ListDocuments(50), as
// a browser or curl sends it.
type listFixture struct {
	s    *servertest.Server
	a    *servertest.Tenant
	wire *dbtest.Wire
	body []byte
}

func newListFixture(tb testing.TB) *listFixture {
	tb.Helper()
	f := &listFixture{wire: &dbtest.Wire{}, body: []byte(`{"pageSize":50}`)}
	f.s = servertest.NewWith(tb, &servertest.Opts{DBConfigFunc: f.wire.Count})
	f.a = f.s.SignUp(tb)
	f.s.SetPlan(tb, f.a.ID, "enterprise") // a monthly quota b.N cannot reach
	f.s.Unthrottle(tb, f.a.ID)
	p, err := f.a.Projects.CreateProject(context.Background(), connect.NewRequest(&quartersv1.CreateProjectRequest{Name: "bench"}))
	require.NoError(tb, err)
	// Documents of a realistic size, with text that JSON must escape.
	f.s.Exec(tb, f.a.ID, `insert into documents (tenant_id, project_id, title, content, create_time, update_time)
		select $1, $2, 'Document ' || i || ' — "quoted" <tag> & ünïcödé',
			repeat('Lorem ipsum dolor sit amet, consectetur adipiscing elit. ', 4) || E'\n\tline ' || i,
			now() - i * interval '1.000123 second', now() - i * interval '1 millisecond'
		from generate_series(1, 100) i`, f.a.ID, p.Msg.GetProject().GetId())
	return f
}

func (f *listFixture) request() *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/quarters.v1.DocumentService/ListDocuments", bytes.NewReader(f.body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+f.a.Key)
	return req
}

// call serves one ListDocuments through the server's handler and returns
// the response body.
func (f *listFixture) call(tb testing.TB) []byte {
	w := &discardWriter{header: http.Header{}}
	f.s.Handler.ServeHTTP(w, f.request())
	if w.status != 0 && w.status != http.StatusOK {
		tb.Fatalf("ListDocuments: HTTP %d: %s", w.status, w.buf.String())
	}
	return w.buf.Bytes()
}

// discardWriter is an http.ResponseWriter that keeps the body (reused
// between calls by the benchmark) and nothing else.
type discardWriter struct {
	header http.Header
	status int
	buf    bytes.Buffer
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }

// As net/http's own response writer, it supports deadlines and flushing
// (http.ResponseController), so the server takes the same path as behind
// a real connection.
func (w *discardWriter) SetReadDeadline(time.Time) error  { return nil }
func (w *discardWriter) SetWriteDeadline(time.Time) error { return nil }
func (w *discardWriter) Flush()                           {}

// TestListDocumentsWire: a tenant-scoped read is one transaction and at
// most two round trips on the wire, also right after a usage flush (the
// monthly quota check answers from memory, never from a read of its own).
func TestListDocumentsWire(t *testing.T) {
	t.Parallel()
	f := newListFixture(t)
	f.call(t) // the tenant record and the API key are cached from here on
	for i := range 3 {
		require.NoError(t, f.s.Usage.Flush(context.Background()))
		f.wire.Reset()
		out := f.call(t)
		got := f.wire.Counts()
		require.Equal(t, int64(1), got.Transactions, "call %d: transactions", i)
		require.LessOrEqual(t, got.RoundTrips, int64(2), "call %d: round trips", i)
		require.Zero(t, got.SimpleQueries, "call %d: COMMIT too goes over the extended protocol", i)
		var resp struct {
			Documents     []map[string]any `json:"documents"`
			NextPageToken string           `json:"nextPageToken"`
		}
		require.NoError(t, json.Unmarshal(out, &resp))
		require.Len(t, resp.Documents, 50)
		require.NotEmpty(t, resp.NextPageToken)
		require.Equal(t, "Document 1 — \"quoted\" <tag> & ünïcödé", resp.Documents[0]["title"])
	}
}

// BenchmarkListDocuments serves ListDocuments(50) over Connect JSON from
// real PostgreSQL. "handler" calls the server's HTTP handler directly, so
// allocs/op are the server's own (target ≤ 300); "http" goes over
// loopback HTTP/1.1 with a client in the same process. Both report round
// trips and transactions per call, counted on the wire, and the response
// size.
func BenchmarkListDocuments(b *testing.B) {
	f := newListFixture(b)
	size := len(f.call(b))
	b.Run("handler", func(b *testing.B) {
		w := &discardWriter{}
		f.wire.Reset()
		b.ReportAllocs()
		for b.Loop() {
			w.header, w.status = http.Header{}, 0
			w.buf.Reset()
			f.s.Handler.ServeHTTP(w, f.request())
			if w.status != 0 && w.status != http.StatusOK {
				b.Fatalf("HTTP %d: %s", w.status, w.buf.String())
			}
		}
		f.report(b, size)
	})
	b.Run("http", func(b *testing.B) {
		url := f.s.URL + "/quarters.v1.DocumentService/ListDocuments"
		f.wire.Reset()
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(f.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+f.a.Key)
			resp, err := f.s.HTTP.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("HTTP %d", resp.StatusCode)
			}
		}
		f.report(b, size)
	})
}

func (f *listFixture) report(b *testing.B, size int) {
	c := f.wire.Counts()
	b.ReportMetric(float64(c.RoundTrips)/float64(b.N), "roundtrips/op")
	b.ReportMetric(float64(c.Transactions)/float64(b.N), "tx/op")
	b.ReportMetric(float64(size), "resp-bytes")
}
