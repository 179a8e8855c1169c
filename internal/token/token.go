// Package token issues and verifies the short-lived access tokens of a signed
// in user: EdDSA (Ed25519) JWTs naming the user, the tenant, the role held
// there and the membership's revocation version.
//
// Verification trusts nothing in the token beyond its kid: the algorithm is
// pinned to EdDSA, the key comes only from the [KeySet], and any header other
// than alg, typ and kid is refused, so jwk, jku, x5u and crit tricks fail.
package token

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

const (
	// MaxTTL caps Issuer.TTL. Access tokens cannot be revoked one by one
	// before they expire, so their lifetime bounds how long a removed member
	// keeps access when nothing checks the revocation version.
	MaxTTL = 15 * time.Minute

	// Leeway is the clock skew tolerated on exp, nbf and iat between the
	// replica that signed a token and the one verifying it.
	Leeway = 30 * time.Second

	// MaxTokenSize is the longest token Verify will parse. Ours are about
	// 450 bytes; the cap stops a hostile header from costing base64 and JSON
	// work in proportion to its size.
	MaxTokenSize = 8 << 10

	// tokenType is the typ header of RFC 9068 access tokens. Checking it
	// keeps some other JWT signed by the same key (an ID token, say) from
	// being accepted as an access token.
	tokenType = "at+jwt"
)

// Role names, as stored in the database.
const (
	RoleMember = "member"
	RoleAdmin  = "admin"
	RoleOwner  = "owner"
)

// ErrInvalidToken is wrapped by every error Verify returns for a token that
// is not acceptable, whatever the reason; the wrapping message names the
// reason for logs but never echoes the token's contents.
var ErrInvalidToken = errors.New("invalid access token")

// ErrUnknownKey is what Verify returns for a token whose kid names no key in
// the KeySet, or a retired key whose retention has ended. It wraps
// ErrInvalidToken. A verifier whose set may be stale (another replica just
// rotated) can reload the set and verify again.
var ErrUnknownKey = fmt.Errorf("%w: unknown kid", ErrInvalidToken)

// Claims is the payload of an access token. Subject (the user id, a UUID),
// ID (jti), IssuedAt, ExpiresAt, NotBefore, Issuer and Audience come from
// the embedded registered claims; Sign fills in all but Subject.
type Claims struct {
	jwt.RegisteredClaims
	// TenantID is the UUID of the tenant the token grants access to.
	TenantID string `json:"tid"`
	// Role is RoleMember, RoleAdmin or RoleOwner.
	Role string `json:"role"`
	// Version is the membership's revocation version when the token was
	// issued; a server that finds a higher version stored rejects the token.
	Version int64 `json:"ver"`
}

// Issuer signs and verifies access tokens for one issuer and audience.
type Issuer struct {
	// Keys signs with its current key and verifies with any key it holds.
	Keys *KeySet
	// Issuer is the iss claim, required to match exactly on Verify.
	Issuer string
	// Audience is the single aud claim, required to match exactly on Verify.
	Audience string
	// TTL is how long a token is valid; it must be in (0, MaxTTL].
	TTL time.Duration
}

// Sign returns a signed token carrying c's Subject, TenantID, Role and
// Version. It sets iss and aud from i, iat and nbf to now, exp to now + TTL
// and a random 128-bit jti, overwriting any of them set in c. It returns an
// error if i is misconfigured or c names an invalid user, tenant or role.
func (i *Issuer) Sign(c Claims, now time.Time) (string, error) {
	if err := i.check(); err != nil {
		return "", err
	}
	if i.TTL <= 0 || i.TTL > MaxTTL {
		return "", fmt.Errorf("token: ttl %v outside (0, %v]", i.TTL, MaxTTL)
	}
	if retain := i.Keys.retain; i.TTL+Leeway > retain {
		// A retired key would vanish while tokens it signed are still live.
		return "", fmt.Errorf("token: ttl %v plus leeway exceeds key retention %v", i.TTL, retain)
	}
	if err := checkPayload(&c); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("token: read jti: %w", err)
	}
	c.RegisteredClaims = jwt.RegisteredClaims{
		Subject:   c.Subject,
		ID:        base64.RawURLEncoding.EncodeToString(jti[:]),
		Issuer:    i.Issuer,
		Audience:  jwt.ClaimStrings{i.Audience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(i.TTL)),
	}
	k := i.Keys.current()
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["typ"] = tokenType
	t.Header["kid"] = k.kid
	s, err := t.SignedString(k.priv)
	if err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	return s, nil
}

func (i *Issuer) check() error {
	if i.Keys == nil || i.Issuer == "" || i.Audience == "" {
		return errors.New("token: issuer needs Keys, Issuer and Audience")
	}
	return nil
}

// checkPayload validates the claims this package does not set itself, on
// both sides: Sign so a bug cannot mint a token Verify would refuse, and
// Verify so a token from a misbehaving signer is refused.
func checkPayload(c *Claims) error {
	if _, err := uuid.Parse(c.Subject); err != nil {
		return errors.New("subject is not a uuid")
	}
	if _, err := uuid.Parse(c.TenantID); err != nil {
		return errors.New("tenant id is not a uuid")
	}
	switch c.Role {
	case RoleMember, RoleAdmin, RoleOwner:
	default:
		return errors.New("unknown role")
	}
	if c.Version < 0 {
		return errors.New("negative version")
	}
	return nil
}

// Reasons the key function refuses a token before its signature is checked.
var (
	errAlg        = errors.New("algorithm not allowed")
	errHeader     = errors.New("unexpected header")
	errType       = errors.New("wrong typ")
	errMissingKid = errors.New("missing kid")
	errUnknownKid = errors.New("unknown kid")
)

// Verify checks tokenString and returns its claims. Every refusal wraps
// ErrInvalidToken: too long, malformed, not EdDSA, an unexpected header, a
// kid not in the KeySet (or whose retention has ended), a bad signature,
// wrong iss or aud, exp, nbf or iat missing, expired or not yet valid beyond
// Leeway, or invalid payload claims. An unknown kid is ErrUnknownKey itself.
// A misconfigured i returns an error that does not wrap ErrInvalidToken, so it
// surfaces as an internal error.
func (i *Issuer) Verify(tokenString string, now time.Time) (Claims, error) {
	if err := i.check(); err != nil {
		return Claims{}, err
	}
	// Checked first so a hostile token costs nothing to refuse.
	if len(tokenString) > MaxTokenSize {
		return Claims{}, fmt.Errorf("%w: too long", ErrInvalidToken)
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(i.Issuer),
		jwt.WithAudience(i.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithNotBeforeRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithStrictDecoding(),
	)
	var c Claims
	_, err := p.ParseWithClaims(tokenString, &c, func(t *jwt.Token) (any, error) {
		// WithValidMethods already refused other algorithms; checking again
		// here means no future parser change can hand our Ed25519 public key
		// to an HMAC or "none" verifier.
		if t.Method != jwt.SigningMethodEdDSA {
			return nil, errAlg
		}
		for h := range t.Header {
			if h != "alg" && h != "typ" && h != "kid" {
				return nil, errHeader
			}
		}
		if typ, _ := t.Header["typ"].(string); typ != tokenType {
			return nil, errType
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errMissingKid
		}
		key, ok := i.Keys.verificationKey(kid, now)
		if !ok {
			return nil, errUnknownKid
		}
		return key, nil
	})
	if errors.Is(err, errUnknownKid) {
		return Claims{}, ErrUnknownKey
	}
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %s", ErrInvalidToken, reason(err))
	}
	// WithAudience accepts any listed audience; ours carry exactly one.
	if len(c.Audience) != 1 {
		return Claims{}, fmt.Errorf("%w: wrong audience", ErrInvalidToken)
	}
	if c.IssuedAt == nil || c.ID == "" {
		return Claims{}, fmt.Errorf("%w: missing claim", ErrInvalidToken)
	}
	if err := checkPayload(&c); err != nil {
		return Claims{}, fmt.Errorf("%w: %s", ErrInvalidToken, err)
	}
	return c, nil
}

// reasons maps our key function's refusals to fixed words, most specific
// first; JWTReason covers the parser's.
var reasons = []struct {
	err    error
	reason string
}{
	{errAlg, "algorithm not allowed"},
	{errHeader, "unexpected header"},
	{errType, "wrong typ"},
	{errMissingKid, "missing kid"},
	{errUnknownKid, "unknown kid"},
}

func reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return JWTReason(err)
}

// jwtReasons are the golang-jwt parser's errors, most specific first.
var jwtReasons = []struct {
	err    error
	reason string
}{
	{jwt.ErrTokenMalformed, "malformed"},
	{jwt.ErrTokenSignatureInvalid, "bad signature or algorithm"},
	{jwt.ErrTokenUnverifiable, "unverifiable"},
	{jwt.ErrTokenRequiredClaimMissing, "missing claim"},
	{jwt.ErrTokenInvalidIssuer, "wrong issuer"},
	{jwt.ErrTokenInvalidAudience, "wrong audience"},
	{jwt.ErrTokenExpired, "expired"},
	{jwt.ErrTokenNotValidYet, "not valid yet"},
	{jwt.ErrTokenUsedBeforeIssued, "issued in the future"},
}

// JWTReason names why the golang-jwt parser refused a token in fixed
// words, for logs: the parser's own messages can quote bytes of the token.
// Errors it does not know are "invalid".
func JWTReason(err error) string {
	for _, r := range jwtReasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "invalid"
}
