package authsvc_test

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	quartersv1 "github.com/quarters-dev/quarters/gen/quarters/v1"
	"github.com/quarters-dev/quarters/internal/apitest"
	"github.com/quarters-dev/quarters/internal/mail"
	"github.com/quarters-dev/quarters/internal/notify"
	"github.com/quarters-dev/quarters/internal/servertest"
)

// smtpServer is a real SMTP server (go-smtp) that requires AUTH PLAIN
// and keeps what it receives.
type smtpServer struct {
	user, pass string
	mu         sync.Mutex
	got        []received
	arrived    chan struct{}
}

type received struct {
	from, to, user string
	data           []byte
}

func (b *smtpServer) NewSession(*smtp.Conn) (smtp.Session, error) { return &smtpSession{b: b}, nil }

type smtpSession struct {
	b        *smtpServer
	user     string
	from, to string
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.b.user || pass != s.b.pass {
			return errors.New("bad credentials")
		}
		s.user = user
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error { s.to = to; return nil }

func (s *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.b.mu.Lock()
	s.b.got = append(s.b.got, received{from: s.from, to: s.to, user: s.user, data: data})
	s.b.mu.Unlock()
	s.b.arrived <- struct{}{}
	return nil
}

func (s *smtpSession) Reset()        {}
func (s *smtpSession) Logout() error { return nil }

// serve starts the SMTP server on addr and stops it at cleanup.
func (b *smtpServer) serve(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	srv := smtp.NewServer(b)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true // plain text on loopback, as ?tls=none says
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// retrySoon retries a failed job after 200ms.
type retrySoon struct{}

func (retrySoon) NextRetry(*rivertype.JobRow) time.Time {
	return time.Now().Add(200 * time.Millisecond)
}

// body decodes a received message's text (quoted-printable or not).
func body(t *testing.T, raw []byte) (subject, text string) {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	require.NoError(t, err)
	r := io.Reader(m.Body)
	if strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	subject, err = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	require.NoError(t, err)
	return subject, string(b)
}

// TestMailOverSMTP: with an SMTP server configured, the sign-up's mail is
// delivered by the worker over SMTP (authenticated), and survives the
// server being down at first: the job fails, is retried, and the mail
// arrives once the server is up, with a link that works.
func TestMailOverSMTP(t *testing.T) {
	t.Parallel()
	// A free port, with nothing listening on it yet: the server is down.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	sender, err := mail.NewSMTP(mail.SMTPParams{
		URL: "smtp://quarters:s3cret@" + addr + "?tls=none", From: "Quarters <noreply@quarters.test>", Timeout: 5 * time.Second,
	})
	require.NoError(t, err)
	// Retries a moment apart, not River's attempt^4 seconds: the test
	// waits for the second attempt at most.
	s := servertest.NewWith(t, &servertest.Opts{Mail: sender, RetryPolicy: retrySoon{}})

	email := "owner@smtp.example"
	_, err = s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{
		Slug: "smtp", Name: "SMTP", OwnerEmail: email, OwnerPassword: servertest.OwnerPassword,
	}))
	require.NoError(t, err)
	deadline := time.Now().Add(servertest.MailWait)
	for apitest.OwnerCount(t, s, `select count(*) from river_job where kind = 'mail' and cardinality(errors) >= 1`) == 0 {
		require.True(t, time.Now().Before(deadline), "the mail job never failed against the server that is down")
		time.Sleep(20 * time.Millisecond)
	}

	be := &smtpServer{user: "quarters", pass: "s3cret", arrived: make(chan struct{}, 8)}
	be.serve(t, addr)
	select {
	case <-be.arrived:
	case <-time.After(servertest.MailWait):
		conn, err := pgx.Connect(ctx, s.OwnerURL)
		require.NoError(t, err)
		var errs string
		require.NoError(t, conn.QueryRow(ctx, `select errors::text from river_job where kind = 'mail'`).Scan(&errs))
		t.Fatalf("the mail never arrived after the SMTP server came up; job errors: %s", errs)
	}
	be.mu.Lock()
	got := be.got[0]
	be.mu.Unlock()
	require.Equal(t, "noreply@quarters.test", got.from)
	require.Equal(t, email, got.to)
	require.Equal(t, "quarters", got.user)
	subject, text := body(t, got.data)
	require.Equal(t, notify.SubjectVerify, subject)
	token := servertest.TokenPattern.FindString(text)
	require.Regexp(t, `^qv_`, token)
	require.Contains(t, text, servertest.LinkURL+"/verify-email?token="+token)
	require.Empty(t, s.Mailbox.Sent(email), "SMTP replaces the development mailbox")

	_, err = anonAuth(s).Auth.VerifyEmail(ctx, req(&quartersv1.VerifyEmailRequest{Token: token}))
	require.NoError(t, err)
	apitest.MustSignIn(t, s, email, servertest.OwnerPassword, "smtp")
	jobsDone(t, s)
	require.Equal(t, 1, apitest.OwnerCount(t, s, `select count(*) from river_job where kind = 'mail' and state = 'completed'`))
	be.mu.Lock()
	require.Len(t, be.got, 1, "one mail: the failed attempts sent nothing")
	be.mu.Unlock()
}

// TestMailRolledBack: a mail is enqueued in the transaction of its cause,
// so a call that fails enqueues nothing: a sign-up whose slug is taken, an
// invitation over the member quota.
func TestMailRolledBack(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := s.SignUp(t)
	apitest.SetMaxMembers(t, s, a.ID, 1)
	jobs := func() int { return apitest.OwnerCount(t, s, `select count(*) from river_job where kind = 'mail'`) }
	before := jobs()

	_, err := s.Anonymous().CreateTenant(ctx, req(&quartersv1.CreateTenantRequest{
		Slug: a.Slug, Name: "Taken", OwnerEmail: "second@rollback.example", OwnerPassword: servertest.OwnerPassword,
	}))
	apitest.RequireCode(t, err, connect.CodeAlreadyExists)
	_, err = a.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "third@rollback.example", Role: quartersv1.Role_ROLE_MEMBER}))
	apitest.RequireMemberQuota(t, err, 1)
	require.Equal(t, before, jobs(), "a failed call enqueued a mail")
	require.Zero(t, apitest.OwnerCount(t, s, `select count(*) from users where email like '%@rollback.example'`))

	apitest.SetMaxMembers(t, s, a.ID, 2)
	_, err = a.Members.InviteMember(ctx, req(&quartersv1.InviteMemberRequest{Email: "third@rollback.example", Role: quartersv1.Role_ROLE_MEMBER}))
	require.NoError(t, err)
	require.Equal(t, before+1, jobs())
	apitest.InvitationMail(t, s, "third@rollback.example")
	jobsDone(t, s)
	require.Empty(t, s.Mailbox.Sent("second@rollback.example"))
}
