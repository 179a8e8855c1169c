package openapi

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The /docs page: Redoc, copied from npm into docs/dist by `npm run build`
// in docs/ (pinned in its package-lock.json) and embedded, so the page
// loads nothing from elsewhere.
var (
	//go:embed docs/dist/index.html
	docsHTML []byte
	//go:embed docs/dist/redoc.standalone.js
	redocJS []byte
	//go:embed docs/dist/redoc.standalone.js.LICENSE.txt
	redocLicense []byte
)

// docsPolicy lets the page use only this origin: the bundle, the document
// and Redoc's inline styles and search worker (a blob). A renderer that
// reached for a CDN would be blocked, and the docs test would see it.
const docsPolicy = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:; font-src 'self' data:"

// DocsHandler serves the API reference page at /docs and its script at
// /docs/redoc.standalone.js (and the script's licence notices), needing no
// credential. The page renders the document Handler serves at
// /openapi.yaml.
func DocsHandler() http.Handler {
	html := newAsset(docsHTML, "text/html; charset=utf-8")
	js := newAsset(redocJS, "text/javascript; charset=utf-8")
	license := newAsset(redocLicense, "text/plain; charset=utf-8")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimSuffix(r.URL.Path, "/") {
		case "/docs":
			w.Header().Set("Content-Security-Policy", docsPolicy)
			html.serve(w, r)
		case "/docs/redoc.standalone.js":
			js.serve(w, r)
		case "/docs/redoc.standalone.js.LICENSE.txt":
			license.serve(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// asset is one embedded file, served with an ETag and, to clients that
// accept it, gzipped (compressed once, on first use: the script is 1 MB).
type asset struct {
	body, gz    []byte
	contentType string
	etag        string
	once        sync.Once
}

func newAsset(body []byte, contentType string) *asset {
	sum := sha256.Sum256(body)
	return &asset{body: body, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
}

func (a *asset) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Add("Vary", "Accept-Encoding")
	body, etag := a.body, a.etag
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		a.once.Do(a.compress)
		h.Set("Content-Encoding", "gzip")
		// A different representation has a different tag.
		body, etag = a.gz, strings.TrimSuffix(a.etag, `"`)+`-gzip"`
	}
	h.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func (a *asset) compress() {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // a valid level: no error
	_, _ = zw.Write(a.body)                                  // into memory: cannot fail
	_ = zw.Close()
	a.gz = buf.Bytes()
}
