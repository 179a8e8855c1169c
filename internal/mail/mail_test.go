package mail_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/internal/mail"
)

// TestNewSMTP: usable URLs are accepted; the others are refused with a
// reason that never repeats the password.
func TestNewSMTP(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"smtps://user:pw@mail.example:465", "smtp://user:pw@mail.example:587", "smtp://mail.example",
		"smtp://relay.internal:25?tls=none", "smtp://mail.example?tls=starttls",
	} {
		_, err := mail.NewSMTP(mail.SMTPParams{URL: u, From: "Quarters <noreply@example.com>"})
		require.NoError(t, err, u)
	}
	for u, want := range map[string]string{
		"http://user:hunter22@mail.example":           "scheme",
		"smtp://user:hunter22@mail.example:99999":     "port",
		"smtp://user:hunter22@mail.example?tls=maybe": "tls=",
		"smtp://user:hunter22@:25":                    "no host",
	} {
		_, err := mail.NewSMTP(mail.SMTPParams{URL: u, From: "noreply@example.com"})
		require.ErrorContains(t, err, want, u)
		require.NotContains(t, err.Error(), "hunter22", u)
	}
	_, err := mail.NewSMTP(mail.SMTPParams{URL: "smtp://mail.example"})
	require.ErrorContains(t, err, "QUARTERS_MAIL_FROM")
	_, err = mail.NewSMTP(mail.SMTPParams{URL: "smtp://mail.example", From: "not an address"})
	require.ErrorContains(t, err, "QUARTERS_MAIL_FROM")
}

// TestMailbox: the development mailbox keeps messages in memory and as
// numbered files, going on from the highest number after a restart, and
// Wait finds a message that arrives later.
func TestMailbox(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "box")
	logger := slog.New(slog.DiscardHandler)
	b, err := mail.NewMailbox(logger, dir)
	require.NoError(t, err)
	require.NoError(t, b.Send(ctx, mail.Message{To: "Ann@Example.com", Subject: "one", Text: "line 1\nhttps://x/?token=qv_1"}))
	require.ErrorIs(t, b.Send(ctx, mail.Message{Subject: "nobody"}), mail.ErrNoRecipient)

	again, err := mail.NewMailbox(logger, dir) // a restart
	require.NoError(t, err)
	require.NoError(t, again.Send(ctx, mail.Message{To: "bob+x@example.com", Subject: "two", Text: "hi"}))
	names, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	require.NoError(t, err)
	for i := range names {
		names[i] = filepath.Base(names[i])
	}
	require.Equal(t, []string{"000001-ann@example.com.eml", "000002-bob+x@example.com.eml"}, names)
	raw, err := os.ReadFile(filepath.Join(dir, names[0]))
	require.NoError(t, err)
	require.Equal(t, "To: Ann@Example.com\r\nSubject: one\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nline 1\r\nhttps://x/?token=qv_1", string(raw))

	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	go func() { _ = b.Send(ctx, mail.Message{To: "late@example.com", Subject: "three"}) }()
	m, i, err := b.Wait(wctx, 1, func(m mail.Message) bool { return strings.HasPrefix(m.To, "late") })
	require.NoError(t, err)
	require.Equal(t, "three", m.Subject)
	require.Equal(t, 1, i)
	require.Len(t, b.Messages(), 2)
}

var ctx = context.Background()
