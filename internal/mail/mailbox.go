package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Mailbox is the development Sender, used when no SMTP server is
// configured: each message is logged (recipient, subject and the
// token-bearing link, at info: so a fresh server's mails can be followed
// from its log) and kept, in memory and, with a directory, as a file
// <n>-<to>.eml there, n counting up from the highest already in it, so
// the latest mail to an address sorts last.
//
// It logs secrets by design: a deployment that sends real mail configures
// SMTP, and then nothing token-bearing is logged.
type Mailbox struct {
	logger *slog.Logger
	dir    string

	mu      sync.Mutex
	msgs    []Message
	seq     int
	changed chan struct{} // closed and replaced on every message
}

// NewMailbox returns a mailbox that logs to logger and, if dir is not
// empty, writes each message to a file in dir (created if missing).
func NewMailbox(logger *slog.Logger, dir string) (*Mailbox, error) {
	if logger == nil {
		logger = slog.Default()
	}
	b := &Mailbox{logger: logger, dir: dir, changed: make(chan struct{})}
	if dir == "" {
		return b, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mail: mailbox directory: %w", err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		return nil, fmt.Errorf("mail: mailbox directory: %w", err)
	}
	for _, n := range names {
		num, _, _ := strings.Cut(filepath.Base(n), "-")
		if v, err := strconv.Atoi(num); err == nil && v > b.seq {
			b.seq = v
		}
	}
	return b, nil
}

// Dir is the directory messages are written to ("" for memory only).
func (b *Mailbox) Dir() string { return b.dir }

// Send logs and keeps m.
func (b *Mailbox) Send(ctx context.Context, m Message) error {
	if m.To == "" {
		return ErrNoRecipient
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	file := ""
	if b.dir != "" {
		var err error
		if file, err = b.write(m); err != nil {
			return err
		}
	}
	b.msgs = append(b.msgs, m)
	close(b.changed)
	b.changed = make(chan struct{})
	b.logger.InfoContext(ctx, "mail (development mailbox: no QUARTERS_SMTP_URL)",
		"to", m.To, "subject", m.Subject, "link", m.Link, "file", file)
	return nil
}

// write stores m as the next numbered file; b.mu is held. A file name
// taken by another process sharing the directory moves on to the next.
func (b *Mailbox) write(m Message) (string, error) {
	body := "To: " + m.To + "\r\nSubject: " + m.Subject +
		"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + strings.ReplaceAll(m.Text, "\n", "\r\n")
	for range 1000 {
		b.seq++
		name := filepath.Join(b.dir, fmt.Sprintf("%06d-%s.eml", b.seq, fileSafe(m.To)))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("mail: mailbox: %w", err)
		}
		_, err = f.WriteString(body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", fmt.Errorf("mail: mailbox: %w", err)
		}
		return name, nil
	}
	return "", errors.New("mail: mailbox: no free file name")
}

// fileSafe is addr lowercased with anything but letters, digits and
// @._+- replaced, for a file name.
func fileSafe(addr string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', strings.ContainsRune("@._+-", r):
			return r
		}
		return '_'
	}, strings.ToLower(addr))
}

// Messages returns every message kept so far, oldest first.
func (b *Mailbox) Messages() []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Message(nil), b.msgs...)
}

// Wait returns the first message, from index from on, for which match
// is true, with its index, waiting for one to arrive until ctx is done.
func (b *Mailbox) Wait(ctx context.Context, from int, match func(Message) bool) (Message, int, error) {
	for {
		b.mu.Lock()
		for i := from; i < len(b.msgs); i++ {
			if match(b.msgs[i]) {
				m := b.msgs[i]
				b.mu.Unlock()
				return m, i, nil
			}
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return Message{}, -1, ctx.Err()
		}
	}
}
