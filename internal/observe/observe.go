// Package observe is the outermost layer of every call: it gives the call a
// request id, turns whatever error a handler returns into a Connect error a
// client can act on (or an opaque INTERNAL, logged with the request id), and
// writes one structured log line per call.
package observe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"connectrpc.com/authn"
	"connectrpc.com/connect"

	"github.com/quarters-dev/quarters/internal/auth"
)

// RequestIDHeader carries the request id both ways: a well-formed id sent by
// the client (or a proxy) is kept, so logs can be joined across hops.
const RequestIDHeader = "X-Request-Id"

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// call is what the layers inside report back to the log line.
type call struct {
	requestID string
	clientIP  string
	code      connect.Code
	coded     bool
	tenantID  string
}

type ctxKey struct{}

// ClientIP returns the address of the client the call came from, or "":
// the TCP peer, or, when that is a trusted proxy, the client it names in
// X-Forwarded-For (see TrustedProxies.ClientAddr). It is the one source of
// the client address for logs and per-address limits.
func ClientIP(ctx context.Context) string {
	if c, ok := ctx.Value(ctxKey{}).(*call); ok {
		return c.clientIP
	}
	return ""
}

// RequestID returns the request id of the call ctx belongs to, or "".
func RequestID(ctx context.Context) string {
	if c, ok := ctx.Value(ctxKey{}).(*call); ok {
		return c.requestID
	}
	return ""
}

// Middleware wraps the whole HTTP handler: it assigns the request id and
// the client address (ClientIP; X-Forwarded-For counts only from proxies),
// and logs one line per request after it completes, with the procedure,
// the tenant (when authenticated), the Connect code and the duration.
// Requests refused before any interceptor ran (bad credentials) are logged
// too, with the code read from the response.
func Middleware(logger *slog.Logger, proxies TrustedProxies, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rid := r.Header.Get(RequestIDHeader)
		if !validRequestID.MatchString(rid) {
			rid = newRequestID()
		}
		w.Header().Set(RequestIDHeader, rid)
		c := &call{requestID: rid, clientIP: proxies.ClientAddr(r)}
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), ctxKey{}, c)))

		procedure, isRPC := authn.InferProcedure(r.URL)
		code := c.code
		if !c.coded {
			code = codeFromResponse(rec)
		}
		level := slog.LevelInfo
		switch {
		case !isRPC:
			level = slog.LevelDebug // health probes and the like
		case code == connect.CodeInternal || code == connect.CodeUnknown || code == connect.CodeDataLoss:
			level = slog.LevelError
		}
		attrs := []slog.Attr{
			slog.String("request_id", rid),
			slog.String("procedure", procedure),
			slog.String("code", codeString(code)),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.Int("http_status", rec.status()),
			slog.String("client_ip", c.clientIP),
		}
		if c.tenantID != "" {
			attrs = append(attrs, slog.String("tenant_id", c.tenantID))
		}
		logger.LogAttrs(r.Context(), level, "call", attrs...)
	})
}

func codeString(code connect.Code) string {
	if code == 0 {
		return "ok"
	}
	return code.String()
}

// codeFromResponse reads the outcome of a call no interceptor saw: gRPC
// reports it in Grpc-Status, Connect in the HTTP status.
func codeFromResponse(rec *recorder) connect.Code {
	for _, v := range []string{rec.Header().Get("Grpc-Status"), rec.Header().Get(http.TrailerPrefix + "Grpc-Status")} {
		if n, err := strconv.Atoi(v); err == nil {
			return connect.Code(n)
		}
	}
	switch s := rec.status(); {
	case s < 400:
		return 0
	case s == http.StatusUnauthorized:
		return connect.CodeUnauthenticated
	case s == http.StatusForbidden:
		return connect.CodePermissionDenied
	case s == http.StatusNotFound:
		return connect.CodeNotFound
	case s == http.StatusTooManyRequests:
		return connect.CodeResourceExhausted
	case s < 500:
		return connect.CodeInvalidArgument
	case s == http.StatusServiceUnavailable:
		return connect.CodeUnavailable
	default:
		return connect.CodeInternal
	}
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// recorder remembers the status code and keeps the writer's optional
// interfaces that Connect and gRPC need (flushing for streams).
type recorder struct {
	http.ResponseWriter
	code int
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// NewInterceptor returns the outermost interceptor: it maps handler errors
// with errs and records the call's code and tenant for the log line.
func NewInterceptor(errs *Errors) connect.Interceptor {
	return &interceptor{errs: errs}
}

type interceptor struct{ errs *Errors }

func (i *interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		resp, err := next(ctx, req)
		err = i.finish(ctx, req.Spec().Procedure, err)
		return resp, err
	}
}

func (i *interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i *interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		return i.finish(ctx, conn.Spec().Procedure, next(ctx, conn))
	}
}

func (i *interceptor) finish(ctx context.Context, procedure string, err error) error {
	if err != nil {
		err = i.errs.Map(ctx, procedure, err)
	} else {
		i.errs.Succeeded(ctx)
	}
	if c, ok := ctx.Value(ctxKey{}).(*call); ok {
		c.code, c.coded = 0, true
		if err != nil {
			// Not called without an error: CodeOf allocates.
			c.code = connect.CodeOf(err)
		}
		if p, ok := auth.FromContext(ctx); ok {
			c.tenantID = p.TenantID.String()
		}
	}
	return err
}
