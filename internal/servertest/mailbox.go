package servertest

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/internal/mail"
)

// Mailbox reads the mails a test server sent to its development mailbox.
type Mailbox struct {
	box   *mail.Mailbox
	mu    sync.Mutex
	taken map[int]bool
}

// MailWait bounds Mailbox.Wait: a mail job runs within a second or so of
// its commit; this is only how long a broken test hangs.
const MailWait = 30 * time.Second

// TokenPattern matches the tokens mails carry: invitation (qi_),
// verification (qv_) and password (qp_) tokens.
var TokenPattern = regexp.MustCompile(`\bq[ivp]_[a-z2-7]{39}\b`)

// Wait returns the next mail to to (any case) whose subject contains
// subject that no earlier Wait returned, waiting for it to be delivered,
// and the token it carries ("" if none). It fails the test if none comes
// within MailWait.
func (m *Mailbox) Wait(t testing.TB, to, subject string) (mail.Message, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), MailWait)
	defer cancel()
	from := 0
	for {
		msg, i, err := m.box.Wait(ctx, from, func(msg mail.Message) bool {
			return strings.EqualFold(msg.To, to) && strings.Contains(msg.Subject, subject)
		})
		require.NoError(t, err, "no mail to %s about %q", to, subject)
		m.mu.Lock()
		if !m.taken[i] {
			m.taken[i] = true
			m.mu.Unlock()
			return msg, TokenPattern.FindString(msg.Text)
		}
		m.mu.Unlock()
		from = i + 1
	}
}

// Sent returns every mail delivered to to (any case) so far, oldest
// first, whether or not Wait returned it.
func (m *Mailbox) Sent(to string) []mail.Message {
	var out []mail.Message
	for _, msg := range m.box.Messages() {
		if strings.EqualFold(msg.To, to) {
			out = append(out, msg)
		}
	}
	return out
}

// Count returns how many mails with subject were delivered to to (any
// case) so far.
func (m *Mailbox) Count(to, subject string) int {
	n := 0
	for _, msg := range m.Sent(to) {
		if msg.Subject == subject {
			n++
		}
	}
	return n
}
