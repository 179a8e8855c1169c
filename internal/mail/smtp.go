package mail

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// SMTPParams are NewSMTP's inputs.
type SMTPParams struct {
	// URL is the server: smtps://user:pass@host:465 (TLS from the first
	// byte) or smtp://user:pass@host:587 (STARTTLS, required). The
	// credentials are optional. smtp://host:25?tls=none sends in clear
	// text: only for a relay on the same host or network (and tests); with
	// credentials it authenticates (PLAIN) only to a loopback server.
	URL string
	// From is the sender address (QUARTERS_MAIL_FROM).
	From string
	// Timeout bounds connecting and each SMTP command (default 15s).
	Timeout time.Duration
}

// SMTP is a Sender that delivers over SMTP, one connection per message.
type SMTP struct {
	from string
	opts []gomail.Option
	host string
}

// NewSMTP checks p and returns the sender; it does not connect. It returns
// an error for a URL it cannot use, naming the problem but never the
// password.
func NewSMTP(p SMTPParams) (*SMTP, error) {
	u, err := url.Parse(p.URL)
	if err != nil {
		return nil, errors.New("mail: QUARTERS_SMTP_URL is not a URL")
	}
	if p.From == "" {
		return nil, errors.New("mail: QUARTERS_MAIL_FROM is required with QUARTERS_SMTP_URL")
	}
	if err := gomail.NewMsg().From(p.From); err != nil {
		return nil, fmt.Errorf("mail: QUARTERS_MAIL_FROM: %w", err)
	}
	if u.Hostname() == "" {
		return nil, errors.New("mail: QUARTERS_SMTP_URL has no host")
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	opts := []gomail.Option{gomail.WithTimeout(timeout)}
	var (
		port int
		auth = gomail.SMTPAuthAutoDiscover // the strongest the server offers over TLS
	)
	switch u.Scheme {
	case "smtps":
		port = 465
		opts = append(opts, gomail.WithSSL())
	case "smtp":
		port = 587
		switch tls := u.Query().Get("tls"); tls {
		case "", "starttls":
			opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
		case "none":
			opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
			// PLAIN, which go-mail sends in clear text only to a
			// loopback server: a password never crosses a network
			// unencrypted.
			auth = gomail.SMTPAuthPlain
		default:
			return nil, fmt.Errorf("mail: QUARTERS_SMTP_URL tls=%q: want starttls (default) or none", tls)
		}
	default:
		return nil, fmt.Errorf("mail: QUARTERS_SMTP_URL scheme %q: want smtp or smtps", u.Scheme)
	}
	if ps := u.Port(); ps != "" {
		if port, err = strconv.Atoi(ps); err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("mail: QUARTERS_SMTP_URL port %q", ps)
		}
	}
	opts = append(opts, gomail.WithPort(port))
	if u.User != nil {
		pass, _ := u.User.Password()
		opts = append(opts, gomail.WithSMTPAuth(auth),
			gomail.WithUsername(u.User.Username()), gomail.WithPassword(pass))
	}
	return &SMTP{from: p.From, opts: opts, host: u.Hostname()}, nil
}

// Send delivers m. An error means it may not have been delivered.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	if m.To == "" {
		return ErrNoRecipient
	}
	msg := gomail.NewMsg()
	if err := msg.From(s.from); err != nil {
		return fmt.Errorf("mail: from: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return fmt.Errorf("mail: to: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	c, err := gomail.NewClient(s.host, s.opts...)
	if err != nil {
		return fmt.Errorf("mail: client: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("mail: send to %s via %s: %w", m.To, s.host, err)
	}
	return nil
}
