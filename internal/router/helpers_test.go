package router_test

import (
	"context"
	"errors"
	"testing"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/servertest"
)

var ctx = context.Background()

func req[T any](m *T) *connect.Request[T] { return connect.NewRequest(m) }

// requireCode asserts err is a Connect error with code, and returns it.
func requireCode(t *testing.T, err error, code connect.Code) *connect.Error {
	t.Helper()
	require.Error(t, err)
	var cerr *connect.Error
	require.True(t, errors.As(err, &cerr), "not a connect error: %v", err)
	require.Equal(t, code, cerr.Code(), "message: %s", cerr.Message())
	return cerr
}

// errorInfo returns the ErrorInfo detail of err, if any.
func errorInfo(t *testing.T, cerr *connect.Error) *errdetails.ErrorInfo {
	t.Helper()
	for _, d := range cerr.Details() {
		v, err := d.Value()
		require.NoError(t, err)
		if info, ok := v.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	t.Fatalf("no ErrorInfo detail in %v", cerr)
	return nil
}

// violations returns the field paths protovalidate reported in err.
func violations(t *testing.T, cerr *connect.Error) []string {
	t.Helper()
	var paths []string
	for _, d := range cerr.Details() {
		v, err := d.Value()
		require.NoError(t, err)
		if vs, ok := v.(*validate.Violations); ok {
			for _, viol := range vs.GetViolations() {
				p := ""
				for i, e := range viol.GetField().GetElements() {
					if i > 0 {
						p += "."
					}
					p += e.GetFieldName()
				}
				if p == "" {
					p = viol.GetRuleId()
				}
				paths = append(paths, p)
			}
		}
	}
	return paths
}

func createProject(t *testing.T, tn *servertest.Tenant, name string) *quartersv1.Project {
	t.Helper()
	resp, err := tn.Projects.CreateProject(ctx, req(&quartersv1.CreateProjectRequest{Name: name, Description: "about " + name}))
	require.NoError(t, err)
	require.Equal(t, name, resp.Msg.GetProject().GetName())
	return resp.Msg.GetProject()
}

func createDocument(t *testing.T, tn *servertest.Tenant, projectID, title string) *quartersv1.Document {
	t.Helper()
	resp, err := tn.Documents.CreateDocument(ctx, req(&quartersv1.CreateDocumentRequest{ProjectId: projectID, Title: title, Content: "text of " + title}))
	require.NoError(t, err)
	require.Equal(t, title, resp.Msg.GetDocument().GetTitle())
	return resp.Msg.GetDocument()
}

type ctxT = context.Context

func mask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

// mangle changes a secret's last character (to another one, always).
func mangle(secret string) string {
	last := "a"
	if secret[len(secret)-1] == 'a' {
		last = "b"
	}
	return secret[:len(secret)-1] + last
}
