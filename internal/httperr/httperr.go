// Package httperr makes every HTTP answer a client can get a Connect error
// it can read. connect-go answers a request it cannot dispatch (an
// unsupported Content-Type, a GET on an RPC with side effects, a GET
// without its query parameters) with a status and an empty body, and
// net/http answers unknown paths with "404 page not found": a curl user
// sees nothing useful. Middleware replaces those answers with a Connect
// JSON error body whose message says what to send, keeping the status.
//
// It also writes the error bodies others produce without HTML escapes:
// connect-go renders errors with encoding/json, which turns the < and > in
// a message such as "Bearer <API key>" into \u003c and \u003e. Those are
// valid JSON but unreadable in a terminal.
package httperr

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Params are Middleware's inputs.
type Params struct {
	// IsProcedure reports whether path (such as
	// "/quarters.v1.ProjectService/ListProjects") is a served RPC.
	IsProcedure func(path string) bool
	// IsService reports whether name (such as "quarters.v1.ProjectService")
	// is a served service: a path under it that is no procedure is a typo
	// of one, answered before authentication asks for a credential.
	IsService func(name string) bool
	// Catalog is where the list of procedures is (named in 404s).
	Catalog string
}

// Body is a Connect error's JSON form (connect.Error on the wire).
type Body struct {
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
}

// Middleware wraps next, a mux of Connect handlers and other routes, so
// that its empty or plain-text 404, 405 and 415 answers, and those to a
// bare GET, become Connect errors, and its JSON error bodies carry no HTML
// escapes.
func Middleware(p Params, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if service, ok := serviceOf(r.URL.Path); ok && p.IsService(service) && !p.IsProcedure(r.URL.Path) {
			Write(w, http.StatusNotFound, "unimplemented", unknownProcedure(r.URL.Path, service, p.Catalog))
			return
		}
		cw := &captureWriter{ResponseWriter: w, r: r, p: p}
		next.ServeHTTP(cw, r)
		cw.finish()
	})
}

// Write answers with status and a Connect error body of code and message.
func Write(w http.ResponseWriter, status int, code, message string) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(Body{Code: code, Message: message}) // strings only: cannot fail
	h := w.Header()
	h.Del("X-Content-Type-Options")
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// serviceOf returns the first segment of a procedure-shaped path
// ("/pkg.Service/Method").
func serviceOf(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/")
	if !ok {
		return "", false
	}
	service, _, ok := strings.Cut(rest, "/")
	return service, ok && strings.Contains(service, ".")
}

func unknownProcedure(path, service, catalog string) string {
	return fmt.Sprintf("no procedure %s in %s: check the method name's spelling and case; the procedures are listed in %s", path, service, catalog)
}

// mode is what captureWriter does with the response.
type mode int

const (
	pass    mode = iota // copy through untouched
	replace             // drop next's body, write our own error
	clean               // buffer a JSON error body, unescape it
)

// captureWriter decides at WriteHeader whether the response is one to
// replace or clean; everything else passes through, streams included.
type captureWriter struct {
	http.ResponseWriter
	r       *http.Request
	p       Params
	decided bool
	mode    mode
	status  int
	buf     bytes.Buffer
}

func (w *captureWriter) WriteHeader(status int) {
	if status < 200 {
		// Informational (103 Early Hints): the final status is still to
		// come.
		w.ResponseWriter.WriteHeader(status)
		return
	}
	if w.decided {
		return
	}
	w.decided = true
	w.status = status
	ct := w.Header().Get("Content-Type")
	switch {
	case (status == http.StatusNotFound || status == http.StatusMethodNotAllowed || status == http.StatusUnsupportedMediaType) &&
		(ct == "" || strings.HasPrefix(ct, "text/plain")):
		w.mode = replace
	case status >= 400 && strings.HasPrefix(ct, "application/json"):
		w.mode = clean
	default:
		w.ResponseWriter.WriteHeader(status)
	}
}

func (w *captureWriter) Write(b []byte) (int, error) {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	switch w.mode {
	case replace:
		return len(b), nil
	case clean:
		return w.buf.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

func (w *captureWriter) Flush() {
	if !w.decided {
		// Flushing sends the headers: a 200, as net/http would.
		w.WriteHeader(http.StatusOK)
	}
	if w.mode != pass {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *captureWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish writes what was held back.
func (w *captureWriter) finish() {
	switch w.mode {
	case replace:
		status, code, msg := w.explain()
		Write(w.ResponseWriter, status, code, msg)
	case clean:
		body := Unescape(w.buf.Bytes())
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.ResponseWriter.WriteHeader(w.status)
		_, _ = w.ResponseWriter.Write(body)
	}
}

// explain turns the status next chose into ours, with a message saying
// what to send instead.
func (w *captureWriter) explain() (int, string, string) {
	r := w.r
	rpc := w.p.IsProcedure(r.URL.Path)
	switch w.status {
	case http.StatusMethodNotAllowed:
		allow := w.Header().Get("Allow")
		if rpc {
			return http.StatusMethodNotAllowed, "unimplemented", fmt.Sprintf(
				"%s has side effects, so it cannot be called with %s: POST this method, the request message as the body, with Content-Type: application/json", r.URL.Path, r.Method)
		}
		return http.StatusMethodNotAllowed, "unimplemented", fmt.Sprintf("%s does not accept %s: use %s", r.URL.Path, r.Method, allow)
	case http.StatusUnsupportedMediaType:
		if r.Method == http.MethodGet {
			if r.URL.Query().Get("encoding") == "" {
				// A GET without the Connect query is a request that lacks
				// its arguments, not one in the wrong media type.
				return http.StatusBadRequest, "invalid_argument", fmt.Sprintf(
					"a GET of %s needs the request in the query string: ?encoding=json&message=<URL-encoded JSON request> (e.g. message=%%7B%%7D for {}), or POST it with Content-Type: application/json", r.URL.Path)
			}
			return http.StatusUnsupportedMediaType, "invalid_argument", fmt.Sprintf(
				"a GET of %s must have no body and encoding=json or encoding=proto in the query string", r.URL.Path)
		}
		got := r.Header.Get("Content-Type")
		if got == "" {
			got = "no Content-Type"
		} else {
			got = "Content-Type " + strconv.Quote(got)
		}
		return http.StatusUnsupportedMediaType, "invalid_argument", fmt.Sprintf(
			"%s is not supported: send Content-Type: application/json or application/proto (Connect), or application/grpc, application/grpc-web", got)
	}
	return http.StatusNotFound, "unimplemented", fmt.Sprintf(
		"no such path %s: RPCs are POST /<package>.<Service>/<Method>, listed in %s", r.URL.Path, w.p.Catalog)
}

// Unescape rewrites the \u003c, \u003e and \u0026 escapes in the strings of
// the JSON document b as the characters they stand for, leaving every
// other byte (and an escaped backslash followed by "u003c") as it is.
func Unescape(b []byte) []byte {
	if !bytes.Contains(b, []byte(`\u00`)) {
		return b
	}
	out := make([]byte, 0, len(b))
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c == '\\' && i+1 < len(b):
			if b[i+1] == 'u' && i+5 < len(b) {
				switch strings.ToLower(string(b[i+2 : i+6])) {
				case "003c":
					out = append(out, '<')
					i += 5
					continue
				case "003e":
					out = append(out, '>')
					i += 5
					continue
				case "0026":
					out = append(out, '&')
					i += 5
					continue
				}
			}
			// Any other escape is copied whole, so its second byte is
			// never read as a quote or a backslash of its own.
			out = append(out, c, b[i+1])
			i++
			continue
		}
		out = append(out, c)
	}
	return out
}
