package notify

import (
	"fmt"
	"strings"
	"time"

	"github.com/quarters-dev/quarters/internal/mail"
)

// The subjects of the mails, stable for tests and filters.
const (
	SubjectVerify      = "Verify your email for Quarters"
	SubjectSetPassword = "Set your Quarters password"
	SubjectReset       = "Reset your Quarters password"
	SubjectOwner       = "You are an owner of a Quarters tenant"
	SubjectInvitation  = "You are invited to a Quarters tenant"
	// SubjectWebhookDisabled is the notice of a disabled webhook endpoint.
	SubjectWebhookDisabled = "A webhook endpoint of your Quarters tenant was disabled"
	// SubjectDeletionScheduled is the notice of a pending tenant deletion.
	SubjectDeletionScheduled = "Your Quarters tenant is scheduled for deletion"
)

// until says when a link stops working.
func until(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// tokenLines are the lines every token-bearing mail ends with: the link,
// and the token for API clients.
func tokenLines(b *strings.Builder, link, token, rpc, field string, expire time.Time) {
	fmt.Fprintf(b, "\n%s\n\nThe link works once, until %s. Using the API instead: call %s with\n{%q: %q%s}\n",
		link, until(expire), rpc, "token", token, field)
}

func resetMail(link, token string, expire time.Time) mail.Message {
	var b strings.Builder
	b.WriteString("Someone asked to reset the password of your Quarters account. To choose a new one, open:\n")
	tokenLines(&b, link, token, "quarters.v1.AuthService/ResetPassword", `, "newPassword": "…"`, expire)
	b.WriteString("\nSetting a new password signs your account out everywhere. If you did not ask, ignore this mail: your password stays as it is.\n")
	return mail.Message{Subject: SubjectReset, Text: b.String(), Link: link}
}

// verifyMail confirms the address of an account signed up with a
// password; tenant names the sign-up's tenant, if any.
func verifyMail(tenant string) compose {
	return func(link, token string, expire time.Time) mail.Message {
		var b strings.Builder
		if tenant != "" {
			fmt.Fprintf(&b, "Someone signed up the tenant %s on Quarters with this address as its owner, and chose a password.\n", tenant)
		} else {
			b.WriteString("Someone asked to verify this address for a Quarters account.\n")
		}
		b.WriteString("If it was you, confirm the address to start signing in:\n")
		tokenLines(&b, link, token, "quarters.v1.AuthService/VerifyEmail", "", expire)
		b.WriteString("\nIf it was not you, do not open the link: the account cannot be used until the address is verified. " +
			"To take the account over, reset its password (RequestPasswordReset) instead: that ends whatever someone else set up.\n")
		return mail.Message{Subject: SubjectVerify, Text: b.String(), Link: link}
	}
}

// setPasswordMail gives the owner of a sign-up without a password a
// first one.
func setPasswordMail(tenant string) compose {
	return func(link, token string, expire time.Time) mail.Message {
		var b strings.Builder
		fmt.Fprintf(&b, "The tenant %s was signed up on Quarters with this address as its owner. To choose your password, open:\n", tenant)
		tokenLines(&b, link, token, "quarters.v1.AuthService/ResetPassword", `, "newPassword": "…"`, expire)
		b.WriteString("\nIf you did not expect this, ignore it: nobody can sign in to your account without this link.\n")
		return mail.Message{Subject: SubjectSetPassword, Text: b.String(), Link: link}
	}
}

// ownerMail tells an existing account that it owns a new tenant; with a
// link, it also lets the owner set a password (an account nobody had
// proved to own).
func ownerMail(tenant string) compose {
	return func(link, token string, expire time.Time) mail.Message {
		var b strings.Builder
		fmt.Fprintf(&b, "The tenant %s was signed up on Quarters with this address as its owner. Sign in to it with your account.\n", tenant)
		if link != "" {
			b.WriteString("\nYour account has no verified password yet. To choose one, open:\n")
			tokenLines(&b, link, token, "quarters.v1.AuthService/ResetPassword", `, "newPassword": "…"`, expire)
		}
		b.WriteString("\nIf you did not expect this, you can ignore it: a sign-up gives whoever made it no access to your account.\n")
		return mail.Message{Subject: SubjectOwner, Text: b.String(), Link: link}
	}
}

// invitationMail carries an invitation to tenant, made by by (an email;
// empty for an API key) for role.
func invitationMail(tenant, by, role string) compose {
	return func(link, token string, expire time.Time) mail.Message {
		var b strings.Builder
		who := "An administrator"
		if by != "" {
			who = by
		}
		fmt.Fprintf(&b, "%s invited you to the tenant %s on Quarters, as %s. To join, open:\n", who, tenant, role)
		tokenLines(&b, link, token, "quarters.v1.MemberService/AcceptInvitation", `, "password": "…"`, expire)
		b.WriteString("\nIf you have a Quarters account with a verified email, give its password; otherwise choose one (10 to 128 characters).\n")
		return mail.Message{Subject: SubjectInvitation, Text: b.String(), Link: link}
	}
}

// webhookDisabledMail tells an owner or admin of tenant that Quarters
// disabled the endpoint at url, and why (reason names the last error).
func webhookDisabledMail(tenant, url, reason string) mail.Message {
	var b strings.Builder
	fmt.Fprintf(&b, "Quarters disabled a webhook endpoint of the tenant %s, because its deliveries kept failing.\n\n", tenant)
	fmt.Fprintf(&b, "Endpoint: %s\nReason: %s\n\n", oneLine(url), oneLine(reason))
	b.WriteString("No events are sent to it until it is enabled again: fix the receiver, then call " +
		"quarters.v1.WebhookService/UpdateEndpoint with {\"endpoint\": {\"id\": …, \"enabled\": true}, \"updateMask\": \"enabled\"}. " +
		"ListDeliveries shows the failed deliveries; Redeliver sends one again.\n")
	return mail.Message{Subject: SubjectWebhookDisabled, Text: b.String()}
}

// deletionScheduledMail tells an owner or admin of tenant that its
// deletion is pending: every row goes at purge, unless an owner cancels
// before.
func deletionScheduledMail(tenant string, purge time.Time) mail.Message {
	var b strings.Builder
	fmt.Fprintf(&b, "The deletion of the Quarters tenant %s was requested. Its data will be purged, for good, at %s.\n\n", tenant, until(purge))
	b.WriteString("Until then the tenant's keys and sessions are refused. An owner can take an export " +
		"(quarters.v1.TenantService/ExportTenant) and can stop the deletion with " +
		"quarters.v1.TenantService/CancelTenantDeletion, which restores everything as it was.\n\n" +
		"If nobody in your organisation asked for this, cancel it now and change the owners' passwords.\n")
	return mail.Message{Subject: SubjectDeletionScheduled, Text: b.String()}
}
