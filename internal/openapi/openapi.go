// Package openapi serves the OpenAPI document of Quarters' Connect JSON
// endpoints. buf generate writes it from the protos into gen/openapi (with
// base.openapi.yaml beside this file for what the protos cannot say), and CI
// fails if the committed copy is stale, so what is served always matches
// the contract the server was built from.
package openapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"

	genopenapi "github.com/quarters-dev/quarters/gen/openapi"
)

// ContentType is the document's media type (RFC 9512).
const ContentType = "application/yaml"

// etag identifies this build's document, so clients can revalidate cheaply.
var etag = func() string {
	sum := sha256.Sum256(genopenapi.YAML)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}()

// Document returns the OpenAPI document (YAML). Callers must not modify it.
func Document() []byte { return genopenapi.YAML }

// Handler serves the document to GET and HEAD, needing no credential. It
// answers If-None-Match with 304 and asks caches to revalidate, since a
// deploy changes the document without changing its URL.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", ContentType)
		h.Set("ETag", etag)
		h.Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(genopenapi.YAML))
	})
}
