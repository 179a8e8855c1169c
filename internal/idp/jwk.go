package idp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// MinRSABits is the smallest RSA modulus a JWKS key may have.
const MinRSABits = 2048

// Algorithms each key type may verify. Symmetric algorithms and "none" are
// never accepted: the JWKS is public, so an HMAC "key" from it proves
// nothing.
var (
	rsaAlgs = []string{"RS256", "RS384", "RS512", "PS256"}
	ecAlgs  = map[string]string{"P-256": "ES256", "P-384": "ES384"}
	okpAlgs = map[string]string{"Ed25519": "EdDSA"}
)

// allAlgs is every algorithm some key could verify, for the parser's
// first check.
var allAlgs = []string{"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"}

// Key is one verification key of the identity provider.
type Key struct {
	ID string
	// Public is an *rsa.PublicKey, an *ecdsa.PublicKey or an
	// ed25519.PublicKey.
	Public crypto.PublicKey
	// Algs are the algorithms the key verifies: the JWK's alg if it names
	// one, else every algorithm allowed for its type (and, for EC keys,
	// curve).
	Algs []string
}

// jwk is the JSON of one JSON Web Key (RFC 7517), the members we read.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	// RSA
	N string `json:"n"`
	E string `json:"e"`
	// EC and OKP
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	// D is a private key's secret; a JWKS that publishes one is refused.
	D string `json:"d"`
}

// ParseKey parses one JSON Web Key. It returns an error for a key it
// would not verify with: a kty other than RSA, EC or OKP (so "oct", a
// shared secret, is refused), an RSA modulus under MinRSABits, an EC point
// off its curve or a curve other than P-256 and P-384, an OKP curve other
// than Ed25519, a private key, use other than "sig", an alg that does not
// fit the key, or no kid.
func ParseKey(data []byte) (Key, error) {
	var j jwk
	if err := json.Unmarshal(data, &j); err != nil {
		return Key{}, fmt.Errorf("jwk: %w", err)
	}
	if j.Kid == "" {
		return Key{}, errors.New("jwk: no kid")
	}
	if j.Use != "" && j.Use != "sig" {
		return Key{}, fmt.Errorf("jwk %s: use %q is not sig", j.Kid, j.Use)
	}
	if j.D != "" {
		return Key{}, fmt.Errorf("jwk %s: private key published", j.Kid)
	}
	k := Key{ID: j.Kid}
	var algs []string
	switch j.Kty {
	case "RSA":
		pub, err := rsaKey(j)
		if err != nil {
			return Key{}, fmt.Errorf("jwk %s: %w", j.Kid, err)
		}
		k.Public, algs = pub, rsaAlgs
	case "EC":
		alg, ok := ecAlgs[j.Crv]
		if !ok {
			return Key{}, fmt.Errorf("jwk %s: unsupported curve %q", j.Kid, j.Crv)
		}
		pub, err := ecKey(j)
		if err != nil {
			return Key{}, fmt.Errorf("jwk %s: %w", j.Kid, err)
		}
		k.Public, algs = pub, []string{alg}
	case "OKP":
		alg, ok := okpAlgs[j.Crv]
		if !ok {
			return Key{}, fmt.Errorf("jwk %s: unsupported curve %q", j.Kid, j.Crv)
		}
		x, err := b64(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return Key{}, fmt.Errorf("jwk %s: bad Ed25519 key", j.Kid)
		}
		k.Public, algs = ed25519.PublicKey(x), []string{alg}
	default:
		return Key{}, fmt.Errorf("jwk %s: unsupported kty %q", j.Kid, j.Kty)
	}
	if j.Alg != "" {
		if !slices.Contains(algs, j.Alg) {
			return Key{}, fmt.Errorf("jwk %s: alg %q does not fit kty %s", j.Kid, j.Alg, j.Kty)
		}
		algs = []string{j.Alg}
	}
	k.Algs = algs
	return k, nil
}

func rsaKey(j jwk) (*rsa.PublicKey, error) {
	nb, err := b64(j.N)
	if err != nil {
		return nil, errors.New("bad n")
	}
	eb, err := b64(j.E)
	if err != nil || len(eb) == 0 || len(eb) > 4 {
		return nil, errors.New("bad e")
	}
	n := new(big.Int).SetBytes(nb)
	if n.BitLen() < MinRSABits {
		return nil, fmt.Errorf("rsa modulus of %d bits: want at least %d", n.BitLen(), MinRSABits)
	}
	e := int(new(big.Int).SetBytes(eb).Int64())
	if e < 3 || e%2 == 0 {
		return nil, errors.New("bad e")
	}
	return &rsa.PublicKey{N: n, E: e}, nil
}

func ecKey(j jwk) (*ecdsa.PublicKey, error) {
	curve, size := elliptic.P256(), 32
	if j.Crv == "P-384" {
		curve, size = elliptic.P384(), 48
	}
	x, errX := b64(j.X)
	y, errY := b64(j.Y)
	if errX != nil || errY != nil || len(x) != size || len(y) != size {
		return nil, errors.New("bad EC point")
	}
	// ParseUncompressedPublicKey checks the point is on the curve.
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, errors.New("bad EC point")
	}
	return pub, nil
}

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.Strict().DecodeString(s) }

// ParseJWKS parses a JSON Web Key Set into its usable keys by kid. Keys
// ParseKey refuses are skipped (a set may also publish encryption keys)
// and returned as skipped errors for logging; a kid that appears more than
// once is dropped, since a token naming it would be ambiguous. It returns an
// error if the set is not a JWKS or has no usable key.
func ParseJWKS(data []byte) (keys map[string]Key, skipped []error, err error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, nil, fmt.Errorf("jwks: %w", err)
	}
	keys = make(map[string]Key, len(set.Keys))
	dup := map[string]bool{}
	for _, raw := range set.Keys {
		k, err := ParseKey(raw)
		if err != nil {
			skipped = append(skipped, err)
			continue
		}
		if _, ok := keys[k.ID]; ok || dup[k.ID] {
			dup[k.ID] = true
			delete(keys, k.ID)
			skipped = append(skipped, fmt.Errorf("jwk %s: kid used more than once", k.ID))
			continue
		}
		keys[k.ID] = k
	}
	if len(keys) == 0 {
		return nil, skipped, errors.New("jwks: no usable key")
	}
	return keys, skipped, nil
}
