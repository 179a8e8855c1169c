package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/gen/dbsqlc"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/mail"
)

// WorkerParams are NewWorker's inputs.
type WorkerParams struct {
	DB     *db.DB
	Sender mail.Sender
	// LinkURL is the base of the links in mails: the web app that takes
	// <LinkURL>/verify-email?token=…, /reset-password?token=… and
	// /accept-invitation?token=… and calls the matching RPC.
	LinkURL string
	// Logger receives what the worker skips; nil is slog.Default().
	Logger *slog.Logger
}

// Worker works mail jobs.
type Worker struct {
	river.WorkerDefaults[MailArgs]
	p WorkerParams
}

// NewWorker returns the mail worker, for river.AddWorker.
func NewWorker(p WorkerParams) *Worker {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	p.LinkURL = strings.TrimSuffix(p.LinkURL, "/")
	return &Worker{p: p}
}

// Work delivers one mail. An error (the sender failed, the database is
// down) makes River retry the job later.
func (w *Worker) Work(ctx context.Context, job *river.Job[MailArgs]) error {
	a := job.Args
	var (
		m   *mail.Message
		err error
	)
	switch a.Template {
	case TemplatePasswordReset:
		m, err = w.tokenMail(ctx, job.ID, a.Email, db.PurposeSetPassword, ResetTTL, resetMail)
	case TemplateEmailVerification:
		m, err = w.tokenMail(ctx, job.ID, a.Email, db.PurposeVerifyEmail, VerifyTTL, verifyMail(""))
	case TemplateSignUp:
		m, err = w.signUp(ctx, job.ID, a)
	case TemplateInvitation:
		m, err = w.invitation(ctx, a)
	case TemplateWebhookDisabled:
		m, err = w.webhookDisabled(ctx, a)
	case TemplateDeletionScheduled:
		m, err = w.deletionScheduled(ctx, a)
	default:
		return river.JobCancel(fmt.Errorf("unknown mail template %q", a.Template))
	}
	if err != nil {
		return err
	}
	if m == nil {
		w.p.Logger.DebugContext(ctx, "mail: nothing to send", "template", a.Template, "job_id", job.ID)
		return nil
	}
	return w.p.Sender.Send(ctx, *m)
}

// compose writes a mail to the holder of a token valid until expire.
type compose func(link, token string, expire time.Time) mail.Message

// tokenMail mints a token of purpose for email's account and composes its
// mail, or returns nil when there is nothing to send (see
// db.EmailTokenIssue).
func (w *Worker) tokenMail(ctx context.Context, jobID int64, email, purpose string, ttl time.Duration, c compose) (*mail.Message, error) {
	kind, page := auth.ResetToken, "reset-password"
	if purpose == db.PurposeVerifyEmail {
		kind, page = auth.VerifyToken, "verify-email"
	}
	token, hash, _ := kind.New()
	issued, err := w.p.DB.EmailTokenIssue(ctx, db.EmailTokenIssueParams{
		Email: email, Purpose: purpose, Hash: hash, TTL: ttl, JobID: jobID, MaxLive: MaxLiveTokens,
	})
	if errors.Is(err, db.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m := c(w.link(page, token), token, issued.ExpireTime)
	m.To = issued.Email
	return &m, nil
}

// signUp is the mail to a new tenant's owner: verify the new account's
// email, set a first password, or (an existing account) a notice, with a
// set-password link if nobody ever proved to own the account.
func (w *Worker) signUp(ctx context.Context, jobID int64, a MailArgs) (*mail.Message, error) {
	var (
		t dbsqlc.Tenant
		u dbsqlc.User
	)
	err := w.p.DB.ActAs(ctx, a.TenantID, func(q *dbsqlc.Queries) error {
		var err error
		if t, err = q.TenantGet(ctx, a.TenantID); err != nil {
			return err
		}
		u, err = q.UserGet(ctx, a.UserID) // visible while a member
		return err
	})
	if errors.Is(err, db.ErrNotFound) {
		return nil, nil // the tenant, or the owner's membership, is gone
	}
	if err != nil {
		return nil, fmt.Errorf("load sign-up: %w", err)
	}
	if err := w.active(ctx, t, "sign_up"); err != nil {
		return nil, err
	}
	name := quoteName(t.Name, t.Slug)
	switch {
	case a.UserCreated && a.WithPassword:
		return w.tokenMail(ctx, jobID, u.Email, db.PurposeVerifyEmail, VerifyTTL, verifyMail(name))
	case a.UserCreated:
		return w.tokenMail(ctx, jobID, u.Email, db.PurposeSetPassword, SetPasswordTTL, setPasswordMail(name))
	case u.PasswordHash == nil || u.EmailVerifyTime == nil:
		m, err := w.tokenMail(ctx, jobID, u.Email, db.PurposeSetPassword, SetPasswordTTL, ownerMail(name))
		if m != nil || err != nil {
			return m, err
		}
		// At the cap of live links: the notice alone.
	}
	m := ownerMail(name)("", "", time.Time{})
	m.To = u.Email
	return &m, nil
}

// invitation arms the invitation with a fresh token and composes its mail,
// or returns nil if it can no longer be accepted.
func (w *Worker) invitation(ctx context.Context, a MailArgs) (*mail.Message, error) {
	token, hash, _ := auth.InvitationToken.New()
	var (
		t   dbsqlc.Tenant
		inv dbsqlc.Invitation
		by  string
	)
	err := w.p.DB.ActAs(ctx, a.TenantID, func(q *dbsqlc.Queries) error {
		var err error
		if t, err = q.TenantGet(ctx, a.TenantID); err != nil {
			return err
		}
		if t.Status != "active" {
			return nil // dropped below, the invitation's live link left as it is
		}
		inv, err = q.InvitationArm(ctx, dbsqlc.InvitationArmParams{TenantID: a.TenantID, ID: a.InvitationID, TokenHash: hash[:]})
		if err != nil {
			return err
		}
		if inv.InvitedBy != nil {
			if u, err := q.UserGet(ctx, *inv.InvitedBy); err == nil {
				by = u.Email
			} else if !errors.Is(err, db.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, db.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("arm invitation: %w", err)
	}
	if err := w.active(ctx, t, TemplateInvitation); err != nil {
		return nil, err
	}
	m := invitationMail(quoteName(t.Name, t.Slug), by, inv.Role)(w.link("accept-invitation", token), token, inv.ExpireTime)
	m.To = inv.Email
	return &m, nil
}

// manager loads, acting for a.TenantID, the tenant and the account of
// a.UserID if that person is still one of its owners or admins, and runs
// more (nil: nothing) in the same transaction; db.ErrNotFound when the
// person no longer manages the tenant, or more's row is gone.
func (w *Worker) manager(ctx context.Context, a MailArgs, more func(q *dbsqlc.Queries) error) (t dbsqlc.Tenant, u dbsqlc.User, err error) {
	err = w.p.DB.ActAs(ctx, a.TenantID, func(q *dbsqlc.Queries) error {
		var err error
		if t, err = q.TenantGet(ctx, a.TenantID); err != nil {
			return err
		}
		m, err := q.MembershipGet(ctx, dbsqlc.MembershipGetParams{TenantID: a.TenantID, UserID: a.UserID})
		if err != nil {
			return err
		}
		if m.Role != "owner" && m.Role != "admin" {
			return db.ErrNotFound
		}
		if more != nil {
			if err := more(q); err != nil {
				return err
			}
		}
		u, err = q.UserGet(ctx, a.UserID)
		return err
	})
	return t, u, err
}

// webhookDisabled composes the notice of a disabled endpoint to one of
// the tenant's owners or admins, or returns nil when it no longer applies:
// the endpoint enabled again or deleted, the person no longer an owner or
// admin of the tenant.
func (w *Worker) webhookDisabled(ctx context.Context, a MailArgs) (*mail.Message, error) {
	var e dbsqlc.WebhookEndpoint
	t, u, err := w.manager(ctx, a, func(q *dbsqlc.Queries) error {
		var err error
		e, err = q.WebhookEndpointGet(ctx, dbsqlc.WebhookEndpointGetParams{TenantID: a.TenantID, ID: a.EndpointID})
		return err
	})
	if errors.Is(err, db.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load disabled endpoint: %w", err)
	}
	if err := w.active(ctx, t, TemplateWebhookDisabled); err != nil {
		return nil, err
	}
	if e.Enabled || e.DisabledReason == "" {
		return nil, nil // enabled again (or disabled by the tenant) meanwhile
	}
	m := webhookDisabledMail(quoteName(t.Name, t.Slug), e.Url, e.DisabledReason)
	m.To = u.Email
	return &m, nil
}

// deletionScheduled composes the notice of a pending deletion to one of
// the tenant's owners or admins, or returns nil when it no longer applies:
// the deletion cancelled (or the tenant purged), the person no longer an
// owner or admin. A suspended tenant's managers are told too: unlike the
// other mails, this one is about the tenant's data going away.
func (w *Worker) deletionScheduled(ctx context.Context, a MailArgs) (*mail.Message, error) {
	t, u, err := w.manager(ctx, a, nil)
	if errors.Is(err, db.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load pending deletion: %w", err)
	}
	if t.PurgeTime == nil {
		return nil, nil // cancelled meanwhile
	}
	m := deletionScheduledMail(quoteName(t.Name, t.Slug), *t.PurgeTime)
	m.To = u.Email
	return &m, nil
}

// active drops the mail of a suspended tenant, as jobs.TenantWorker drops
// every tenant job of one: cancelled with a log line, not retried.
func (w *Worker) active(ctx context.Context, t dbsqlc.Tenant, template string) error {
	if t.Status == "active" {
		return nil
	}
	w.p.Logger.InfoContext(ctx, "mail dropped: its tenant is suspended", "template", template, "tenant_id", t.ID)
	return river.JobCancel(fmt.Errorf("tenant %s is %s", t.ID, t.Status))
}

func (w *Worker) link(page, token string) string {
	return w.p.LinkURL + "/" + page + "?token=" + url.QueryEscape(token)
}

// quoteName is a tenant's name and slug for a mail: the name is chosen by
// whoever signed up, so it is quoted, cut short and stripped of control
// characters (no header or line injection).
func quoteName(name, slug string) string {
	clean := oneLine(name)
	if r := []rune(clean); len(r) > 80 {
		clean = string(r[:80]) + "…"
	}
	return fmt.Sprintf("%q (%s)", clean, slug)
}

// oneLine replaces control characters (line breaks among them) with
// spaces: text a tenant or a receiver chose (a name, a URL, an error)
// cannot start a line of its own in a mail.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
