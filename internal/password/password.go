// Package password hashes and checks people's passwords with argon2id
// (RFC 9106), stored as PHC strings, so parameters can be raised later
// without invalidating existing hashes.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Length rules for a new password, in characters. There are no composition
// rules (NIST SP 800-63B): length is what makes a password strong. The upper
// bound caps the work one hash costs.
const (
	MinLength = 10
	MaxLength = 128
)

// Params are argon2id's cost parameters.
type Params struct {
	// Memory is in KiB.
	Memory  uint32
	Time    uint32
	Threads uint8
}

// Default is OWASP's first recommended argon2id setting (19 MiB, 2
// passes, 1 thread): about 30 ms per hash on one core of the development
// machine (see BenchmarkHash). Each sign-in costs one hash.
var Default = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
)

// ErrMismatch is returned by Check for a wrong password.
var ErrMismatch = errors.New("password does not match")

// ErrTooShort and ErrTooLong are returned by Validate.
var (
	ErrTooShort = fmt.Errorf("password must be at least %d characters", MinLength)
	ErrTooLong  = fmt.Errorf("password must be at most %d characters", MaxLength)
)

// Validate applies the length rules to a new password.
func Validate(pw string) error {
	n := utf8.RuneCountInString(pw)
	switch {
	case n < MinLength:
		return ErrTooShort
	case n > MaxLength:
		return ErrTooLong
	}
	return nil
}

// Hash returns the PHC string of pw under p with a fresh random salt.
func Hash(pw string, p Params) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, keyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// Check reports whether pw matches the PHC string hash, comparing in
// constant time. It returns ErrMismatch for a wrong password and another
// error for a hash it cannot read.
func Check(pw, hash string) error {
	p, salt, key, err := parse(hash)
	if err != nil {
		return err
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	if subtle.ConstantTimeCompare(got, key) != 1 {
		return ErrMismatch
	}
	return nil
}

// dummy is a hash of a random password under Default, made once.
var dummy = sync.OnceValue(func() string {
	var pw [16]byte
	_, _ = rand.Read(pw[:])
	h, err := Hash(base64.RawStdEncoding.EncodeToString(pw[:]), Default)
	if err != nil {
		panic("password: " + err.Error())
	}
	return h
})

// CheckMissing does the work of a Check that fails, for a user who does not
// exist or has no password, so the caller's answer takes as long as for a
// wrong password and reveals nothing. It always returns ErrMismatch.
func CheckMissing(pw string, p Params) error {
	if p == Default {
		_ = Check(pw, dummy())
		return ErrMismatch
	}
	// A server configured with other parameters hashes with those, so
	// the time matches its real hashes.
	if h, err := Hash(pw, p); err == nil {
		_ = Check("", h)
	}
	return ErrMismatch
}

// parse reads "$argon2id$v=19$m=…,t=…,p=…$salt$key".
func parse(hash string) (Params, []byte, []byte, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return Params{}, nil, nil, errors.New("password: not an argon2id hash")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return Params{}, nil, nil, errors.New("password: unsupported argon2 version")
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil || p.Time == 0 || p.Threads == 0 {
		return Params{}, nil, nil, errors.New("password: bad argon2 parameters")
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil {
		return Params{}, nil, nil, errors.New("password: bad salt")
	}
	key, err := enc.DecodeString(parts[5])
	if err != nil || len(key) < 16 {
		return Params{}, nil, nil, errors.New("password: bad key")
	}
	return p, salt, key, nil
}
