package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
)

// An opaque secret (API key, refresh token, invitation, verification or
// reset token) is a
// three-character kind prefix + 32 characters encoding 160 random bits + 7
// characters encoding a CRC-32 of those 32. The prefix makes secrets easy
// to recognise (and to find with secret scanners); the checksum lets the
// server reject a mistyped or made-up one without a database lookup. Only
// their SHA-256 is stored: 160 random bits need no slow hash.
const (
	prefixLen     = 3
	secretBytes   = 20
	secretChars   = 32 // base32 of 20 bytes
	checksumChars = 7  // base32 of 4 bytes, unpadded
	secretLen     = prefixLen + secretChars + checksumChars
	// displayChars is how much of a secret is kept in clear, for lists.
	displayChars = prefixLen + 6
)

// Kind is a kind of opaque secret, named by its prefix.
type Kind string

// The kinds of secret Quarters issues.
const (
	APIKey          Kind = "qk_"
	RefreshToken    Kind = "qr_"
	InvitationToken Kind = "qi_"
	// VerifyToken is mailed to verify an email address.
	VerifyToken Kind = "qv_"
	// ResetToken is mailed to set a new password (a reset, or the first
	// password after a sign-up without one).
	ResetToken Kind = "qp_"
)

// keyEncoding is lowercase base32: case-insensitive readers and URL-safe.
var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ErrMalformedKey is returned by Parse for anything that is not a
// well-formed secret of the kind with a valid checksum.
var ErrMalformedKey = errors.New("malformed secret")

// New returns a new random secret of kind k, the SHA-256 hash under which
// it is stored, and its display prefix. Only the hash and prefix may be
// persisted.
func (k Kind) New() (secret string, hash [32]byte, prefix string) {
	raw := make([]byte, secretBytes)
	if _, err := rand.Read(raw); err != nil {
		// crypto/rand never fails on supported platforms; a secret from a
		// broken source must not be issued.
		panic("auth: crypto/rand: " + err.Error())
	}
	body := keyEncoding.EncodeToString(raw)
	secret = string(k) + body + checksum(body)
	return secret, sha256.Sum256([]byte(secret)), secret[:displayChars]
}

// Parse checks the secret's kind, shape and checksum and returns the hash
// to look it up by. It returns ErrMalformedKey for anything else.
func (k Kind) Parse(secret string) ([32]byte, error) {
	if len(secret) != secretLen || !strings.HasPrefix(secret, string(k)) {
		return [32]byte{}, ErrMalformedKey
	}
	body := secret[prefixLen : prefixLen+secretChars]
	if _, err := keyEncoding.DecodeString(body); err != nil {
		return [32]byte{}, ErrMalformedKey
	}
	if checksum(body) != secret[prefixLen+secretChars:] {
		return [32]byte{}, ErrMalformedKey
	}
	return sha256.Sum256([]byte(secret)), nil
}

// NewAPIKey is APIKey.New.
func NewAPIKey() (secret string, hash [32]byte, prefix string) { return APIKey.New() }

// ParseAPIKey is APIKey.Parse.
func ParseAPIKey(key string) ([32]byte, error) { return APIKey.Parse(key) }

// LooksLikeAPIKey reports whether a bearer token is meant as an API key (as
// opposed to an access token), judging by its prefix only.
func LooksLikeAPIKey(token string) bool {
	return strings.HasPrefix(token, string(APIKey))
}

func checksum(body string) string {
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.ChecksumIEEE([]byte(body)))
	return keyEncoding.EncodeToString(sum[:])
}
