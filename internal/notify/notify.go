// Package notify is the mail of Quarters' identity flows and notices: the
// job that carries a mail from the transaction that causes it (sign-up,
// invitation, reset or verification request, a webhook endpoint disabled)
// to a mail.Sender, and the mails themselves.
//
// Tokens are minted at delivery, by the worker, never in the request: the
// job's arguments name what to mail (a tenant and user, an invitation, an
// email) and hold no secret, so neither River's table nor its retained
// completed jobs hold a usable token. The worker stores the token's
// SHA-256 (an email token row, or the invitation's token_hash) just before
// it sends the mail, so the token exists only in the mail.
//
// Delivery is at least once. A retried job replaces the token its earlier
// attempt minted (one token per job: an email token row is keyed by the
// job, an invitation has one hash), so a mail that did go out and is then
// sent again carries a new link and the earlier one stops working; a job
// whose token was used, or whose invitation was accepted, revoked or
// expired meanwhile, sends nothing.
package notify

import (
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
)

// Token lifetimes and the cap on live tokens per account and purpose.
const (
	// ResetTTL bounds a password reset link: short, since it takes over
	// the account.
	ResetTTL = time.Hour
	// SetPasswordTTL bounds the set-password link of a sign-up without a
	// password (or of an owner whose account was never verified): the
	// same power as a reset, for someone who has just signed up; a day is
	// enough, and RequestPasswordReset sends another.
	SetPasswordTTL = 24 * time.Hour
	// VerifyTTL bounds an email verification link; RequestEmailVerification
	// sends another.
	VerifyTTL = 24 * time.Hour
	// MaxLiveTokens caps the live tokens of one purpose per account:
	// requests past it send nothing, so nobody can flood a mailbox through
	// the public request RPCs.
	MaxLiveTokens = 5
	// MaxAttempts bounds a mail's delivery attempts (River's backoff is
	// attempt^4 seconds: about 4 hours for the last of 10).
	MaxAttempts = 10
)

// The templates of MailArgs.
const (
	// TemplateSignUp is CreateTenant's mail to owner_email.
	TemplateSignUp = "sign_up"
	// TemplateInvitation carries an invitation's token to the invitee.
	TemplateInvitation = "invitation"
	// TemplatePasswordReset answers RequestPasswordReset.
	TemplatePasswordReset = "password_reset"
	// TemplateEmailVerification answers RequestEmailVerification.
	TemplateEmailVerification = "email_verification"
	// TemplateWebhookDisabled tells an owner or admin that Quarters
	// disabled a webhook endpoint of the tenant after sustained failure.
	TemplateWebhookDisabled = "webhook_disabled"
	// TemplateDeletionScheduled tells an owner or admin that the tenant's
	// deletion was requested, when it will be purged and how to stop it.
	TemplateDeletionScheduled = "deletion_scheduled"
)

// MailArgs are the mail job's arguments. They hold no secret.
type MailArgs struct {
	Template string `json:"template"`
	// TenantID and UserID: the sign-up's tenant and owner.
	TenantID uuid.UUID `json:"tenant_id,omitzero"`
	UserID   uuid.UUID `json:"user_id,omitzero"`
	// UserCreated says the sign-up created the owner's account;
	// WithPassword that it set owner_password on it.
	UserCreated  bool `json:"user_created,omitempty"`
	WithPassword bool `json:"with_password,omitempty"`
	// InvitationID is the invitation to deliver (in TenantID).
	InvitationID uuid.UUID `json:"invitation_id,omitzero"`
	// Email is the address a reset or verification was requested for.
	Email string `json:"email,omitempty"`
	// EndpointID is the webhook endpoint disabled (in TenantID); UserID
	// then is the owner or admin to tell.
	EndpointID uuid.UUID `json:"endpoint_id,omitzero"`
}

// Kind is River's job kind.
func (MailArgs) Kind() string { return "mail" }

// InsertOpts bounds the attempts.
func (MailArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: MaxAttempts} }

// SignUp is the mail to a new tenant's owner: created says the sign-up
// created the account, withPassword that it was given owner_password.
func SignUp(tenantID, userID uuid.UUID, created, withPassword bool) MailArgs {
	return MailArgs{Template: TemplateSignUp, TenantID: tenantID, UserID: userID, UserCreated: created, WithPassword: withPassword}
}

// Invitation is the mail carrying invitationID's token to its invitee.
func Invitation(tenantID, invitationID uuid.UUID) MailArgs {
	return MailArgs{Template: TemplateInvitation, TenantID: tenantID, InvitationID: invitationID}
}

// PasswordReset is the reset link for email's account, if it has one.
func PasswordReset(email string) MailArgs {
	return MailArgs{Template: TemplatePasswordReset, Email: email}
}

// EmailVerification is a verification link for email's account, if it
// has one that is not verified.
func EmailVerification(email string) MailArgs {
	return MailArgs{Template: TemplateEmailVerification, Email: email}
}

// WebhookDisabled tells userID (an owner or admin of tenantID) that
// Quarters disabled endpointID after sustained delivery failure. The mail
// names the endpoint's URL and its disabled_reason as they are when it is
// sent; nothing goes if the endpoint was enabled again or deleted, or
// userID no longer manages the tenant.
func WebhookDisabled(tenantID, endpointID, userID uuid.UUID) MailArgs {
	return MailArgs{Template: TemplateWebhookDisabled, TenantID: tenantID, EndpointID: endpointID, UserID: userID}
}

// DeletionScheduled tells userID (an owner or admin of tenantID) that the
// tenant's deletion is pending: the purge time and how to cancel, as they
// are when the mail is sent; nothing goes if the deletion was cancelled
// meanwhile or the person no longer manages the tenant. Whoever requested
// it, every owner and admin hears of it, so a deletion made with a stolen
// owner credential does not go unnoticed for the grace period.
func DeletionScheduled(tenantID, userID uuid.UUID) MailArgs {
	return MailArgs{Template: TemplateDeletionScheduled, TenantID: tenantID, UserID: userID}
}
