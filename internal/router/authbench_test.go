package router_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/password"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// BenchmarkAuthenticate is the authentication middleware's cost per call
// on a warm cache, for each kind of credential: an API key (checksum,
// SHA-256, key cache) and an access token (EdDSA signature, claims, the
// member's version in the cached tenant record). Neither touches the
// database once warm.
func BenchmarkAuthenticate(b *testing.B) {
	s := servertest.New(b)
	a := s.SignUp(b)
	keys := auth.NewKeyCache(auth.KeyCacheParams{Lookup: auth.LookupIn(s.DB)})
	mw := auth.NewMiddleware(auth.MiddlewareParams{
		Lookup:      keys.Lookup,
		VerifyToken: s.Sessions.VerifyFunc(s.Tenants),
		IsPublic:    func(string) bool { return false },
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := auth.FromContext(r.Context()); !ok {
			w.WriteHeader(http.StatusTeapot)
		}
	}))
	for _, bc := range []struct{ name, credential string }{
		{"api_key", a.Key},
		{"access_token", a.Owner.GetAccessToken()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodPost, "/quarters.v1.ProjectService/ListProjects", nil)
			r.Header.Set("Authorization", "Bearer "+bc.credential)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r) // warm the caches
			require.Equal(b, http.StatusOK, w.Code)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}

// BenchmarkSignIn is one sign-in at the production password cost
// (password.Default), end to end over HTTP. The failing cases cost the
// same as a success's password check, so timing does not tell an unknown
// email from a wrong password.
func BenchmarkSignIn(b *testing.B) {
	s := servertest.NewWith(b, &servertest.Opts{Password: password.Default})
	a := s.SignUp(b)
	s.Unthrottle(b, a.ID)
	client := s.As("", "", "").Auth
	for _, bc := range []struct {
		name, email, password string
		ok                    bool
	}{
		{"ok", a.OwnerEmail, servertest.OwnerPassword, true},
		{"wrong_password", a.OwnerEmail, "not the password", false},
		{"unknown_email", "nobody@" + a.Slug + ".example", servertest.OwnerPassword, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, err := client.SignIn(ctx, req(&quartersv1.SignInRequest{Email: bc.email, Password: bc.password, Tenant: a.Slug}))
				if (err == nil) != bc.ok {
					b.Fatalf("sign-in: %v", err)
				}
			}
		})
	}
}
