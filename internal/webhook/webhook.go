// Package webhook carries a tenant's events to its webhook endpoints: the
// outbox (Emit writes an event, and a pending delivery per subscribed
// endpoint, in the transaction of the change that causes it, and enqueues
// one job per delivery in that same transaction), the signing of Standard
// Webhooks (https://www.standardwebhooks.com), and the job that posts a
// delivery through an HTTP client that only reaches public addresses.
//
// The service that manages endpoints is internal/webhooksvc; services that
// emit events (internal/project) import this package, not that one.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Feature is the plan feature that enables webhooks.
const Feature = "custom_webhooks"

// The event types Emit writes (and CreateEndpoint accepts). Each event's
// data is the resource as the API returns it (a Project, Document, Member,
// Invitation or ApiKey message in its JSON form), which never holds a
// secret: no API key secret, invitation token or password hash.
const (
	ProjectCreated = "project.created"
	ProjectUpdated = "project.updated"
	// ProjectDeleted's data is the project's id only.
	ProjectDeleted = "project.deleted"

	DocumentCreated = "document.created"
	DocumentUpdated = "document.updated"
	// DocumentDeleted's data is the document's id only.
	DocumentDeleted = "document.deleted"

	// MemberInvited's data is the Invitation (InviteMember).
	MemberInvited = "member.invited"
	// MemberInvitationRevoked's data is the Invitation, revoked
	// (RevokeInvitation, or RemoveMember closing the member's pending
	// invitations).
	MemberInvitationRevoked = "member.invitation_revoked"
	// MemberJoined's data is the Member an accepted invitation made.
	MemberJoined = "member.joined"
	// MemberRoleUpdated's data is the Member with the new role.
	MemberRoleUpdated = "member.role_updated"
	// MemberRemoved's data is the Member as it was before RemoveMember.
	MemberRemoved = "member.removed"

	// APIKeyCreated's data is the ApiKey (never its secret).
	APIKeyCreated = "api_key.created"
	// APIKeyRevoked's data is the ApiKey, revoked (RevokeApiKey, or
	// RemoveMember revoking the keys the member created).
	APIKeyRevoked = "api_key.revoked"
)

// EventTypes lists every event type, the values CreateEndpoint and
// UpdateEndpoint accept in event_types (the contract's validation rules
// list the same; a test holds them equal).
var EventTypes = []string{
	ProjectCreated, ProjectUpdated, ProjectDeleted,
	DocumentCreated, DocumentUpdated, DocumentDeleted,
	MemberInvited, MemberInvitationRevoked, MemberJoined, MemberRoleUpdated, MemberRemoved,
	APIKeyCreated, APIKeyRevoked,
}

// SecretPrefix starts every signing secret, as Standard Webhooks names it.
const SecretPrefix = "whsec_"

// secretBytes is the random key length: 32 bytes, HMAC-SHA256's output
// size, above the 24 Standard Webhooks asks for at least.
const secretBytes = 32

// RotationOverlap is how long the previous secret keeps signing after
// RotateSecret: a day to deploy the new one.
const RotationOverlap = 24 * time.Hour

// NewSecret returns a fresh signing secret: whsec_ and the standard
// base64 of 32 random bytes.
func NewSecret() string {
	b := make([]byte, secretBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// Sign returns the Standard Webhooks signature of one message,
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>", keyed with the bytes the
// secret encodes. It fails for a malformed secret.
func Sign(secret, id string, timestamp time.Time, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil || len(key) == 0 {
		return "", errors.New("webhook: malformed secret")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(timestamp.Unix(), 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// SignatureHeader is the webhook-signature header for secrets (the
// current one first; the previous one during a rotation): the signatures
// separated by spaces, as Standard Webhooks specifies, so a receiver that
// knows either secret accepts the message.
func SignatureHeader(secrets []string, id string, timestamp time.Time, body []byte) (string, error) {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		if s == "" {
			continue
		}
		sig, err := Sign(s, id, timestamp, body)
		if err != nil {
			return "", err
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}

// Verify reports whether header (webhook-signature) holds a valid
// signature of the message under secret: what a receiver does. Quarters
// uses it in tests and offers it to Go receivers.
func Verify(secret, header, id string, timestamp time.Time, body []byte) bool {
	want, err := Sign(secret, id, timestamp, body)
	if err != nil {
		return false
	}
	for _, sig := range strings.Fields(header) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}
