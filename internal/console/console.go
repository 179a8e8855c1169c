// Package console serves the tenant console, a small web app built on the
// TypeScript SDK (its sources are in web/console), at /console. The built
// files are embedded, so the server needs no npm and no file system to
// serve it; CI rebuilds them and fails if the committed copy is stale.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// Path is where the console is mounted.
const Path = "/console"

//go:embed assets
var assets embed.FS

// ContentSecurityPolicy lets the console load only its own script, style
// and API (same origin): no inline scripts or styles, no frames, no
// plugins, and forms post nowhere else. Its chart is SVG built with DOM
// calls, which needs no exception.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// file is one embedded asset, read once.
type file struct {
	data        []byte
	contentType string
	etag        string
}

// Handler serves the console: the assets by name under /console/, and
// index.html for /console and for any other path under /console/ that
// does not name a file (the app routes those itself), so a reload or a
// shared link of /console/keys works. A missing asset (a name with an
// extension) is 404, not the page, so a stale script reference fails
// loudly. It answers GET and HEAD only.
func Handler() http.Handler {
	files := map[string]file{}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		files[strings.TrimPrefix(p, "assets/")] = file{
			data:        data,
			contentType: contentType(p),
			etag:        `"` + hex.EncodeToString(sum[:12]) + `"`,
		}
		return nil
	})
	if err != nil {
		// The files are compiled in: failing to read them is a broken build.
		panic("console: read embedded assets: " + err.Error())
	}
	index, ok := files["index.html"]
	if !ok {
		panic("console: index.html is not embedded: run npm run build in web/console")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "the console answers GET and HEAD only", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, Path), "/")
		f, ok := files[name]
		switch {
		case ok:
		case path.Ext(name) != "":
			http.Error(w, "no such file in the console: "+name, http.StatusNotFound)
			return
		default:
			f = index
		}
		h.Set("Content-Type", f.contentType)
		h.Set("ETag", f.etag)
		// A deploy changes the files under the same names: revalidate
		// (cheap, with the ETag) rather than run yesterday's script.
		h.Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.data))
	})
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	default:
		return "application/octet-stream"
	}
}
