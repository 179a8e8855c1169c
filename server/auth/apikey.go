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

// An API key is "qk_" + 32 characters encoding 160 random bits + 7
// characters encoding a CRC-32 of those 32. The prefix makes keys easy to
// recognise (and to find with secret scanners); the checksum lets the server
// reject a mistyped or made-up key without a database lookup.
const (
	keyPrefix     = "qk_"
	secretBytes   = 20
	secretChars   = 32 // base32 of 20 bytes
	checksumChars = 7  // base32 of 4 bytes, unpadded
	keyLen        = len(keyPrefix) + secretChars + checksumChars
	// displayChars is how much of a key is kept in clear, for lists.
	displayChars = len(keyPrefix) + 6
)

// keyEncoding is lowercase base32: case-insensitive readers and URL-safe.
var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ErrMalformedKey is returned by ParseAPIKey for anything that is not a
// well-formed key with a valid checksum.
var ErrMalformedKey = errors.New("malformed API key")

// NewAPIKey returns a new random key, the SHA-256 hash under which it is
// stored, and its display prefix. Only the hash and prefix may be persisted.
func NewAPIKey() (secret string, hash [32]byte, prefix string) {
	raw := make([]byte, secretBytes)
	if _, err := rand.Read(raw); err != nil {
		// crypto/rand never fails on supported platforms; a key from a
		// broken source must not be issued.
		panic("auth: crypto/rand: " + err.Error())
	}
	body := keyEncoding.EncodeToString(raw)
	secret = keyPrefix + body + checksum(body)
	return secret, sha256.Sum256([]byte(secret)), secret[:displayChars]
}

// ParseAPIKey checks the key's shape and checksum and returns the hash to
// look it up by. It returns ErrMalformedKey for anything else.
func ParseAPIKey(key string) ([32]byte, error) {
	if len(key) != keyLen || !strings.HasPrefix(key, keyPrefix) {
		return [32]byte{}, ErrMalformedKey
	}
	body := key[len(keyPrefix) : len(keyPrefix)+secretChars]
	if _, err := keyEncoding.DecodeString(body); err != nil {
		return [32]byte{}, ErrMalformedKey
	}
	if checksum(body) != key[len(keyPrefix)+secretChars:] {
		return [32]byte{}, ErrMalformedKey
	}
	return sha256.Sum256([]byte(key)), nil
}

// LooksLikeAPIKey reports whether a bearer token is meant as an API key (as
// opposed to some other credential), judging by its prefix only.
func LooksLikeAPIKey(token string) bool {
	return strings.HasPrefix(token, keyPrefix)
}

func checksum(body string) string {
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.ChecksumIEEE([]byte(body)))
	return keyEncoding.EncodeToString(sum[:])
}
