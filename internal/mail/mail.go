// Package mail sends the mails of Quarters' identity flows (verification,
// password reset, invitations). A Sender delivers one message: SMTP when
// QUARTERS_SMTP_URL is configured, otherwise a Mailbox for development,
// which logs every message and keeps it to be read (in memory for tests,
// and as files for the README's walk-through).
//
// Senders are called by the mail job (internal/notify), never by a request:
// a mail is enqueued in the transaction that causes it and delivered, with
// retries, by a background worker.
package mail

import (
	"context"
	"errors"
)

// Message is one plain-text mail.
type Message struct {
	To      string
	Subject string
	Text    string
	// Link is the mail's token-bearing link, if it has one. Only the
	// development Mailbox logs it; an SMTP sender never does.
	Link string
}

// Sender delivers messages. Send returns an error when the message may
// not have been delivered, so the caller retries; a message may then be
// delivered twice (at-least-once).
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// ErrNoRecipient is returned for a message without To.
var ErrNoRecipient = errors.New("mail: message has no recipient")
