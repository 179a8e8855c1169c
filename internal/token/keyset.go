package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// KeySetOpts holds the optional settings of [NewKeySet]; nil is fine.
type KeySetOpts struct {
	// Retain is how long a key stays verifiable after Rotate retires it. It
	// must cover the longest-lived token the key may have signed, so it must
	// be at least the issuer's TTL plus [Leeway]; [Issuer.Sign] refuses to
	// sign otherwise. Zero means [MaxTTL] + [Leeway], which fits any issuer.
	Retain time.Duration
}

// KeySet holds the Ed25519 keys that sign and verify access tokens: one
// current signing key and the retired keys whose tokens may still be live.
// It is safe for concurrent use, so a server can Rotate while it verifies.
//
// A KeySet lives in memory only. Storing it (MarshalPrivate) and loading it on
// every replica (LoadKeySet) is the caller's job, in the database or a secret
// manager, because the private seeds must never reach logs or source control.
type KeySet struct {
	// retain is set once, before the set is shared, so it needs no lock.
	retain time.Duration

	mu sync.RWMutex
	// keys is ordered oldest first; the last one is the current signing key.
	keys []*signingKey
}

// signingKey is one key pair. notAfter is zero while the key is current;
// Rotate sets it to the last instant a token signed by it can be accepted.
type signingKey struct {
	kid      string
	priv     ed25519.PrivateKey
	pub      ed25519.PublicKey
	notAfter time.Time
}

// NewKeySet returns a KeySet with one freshly generated current key.
func NewKeySet(opts *KeySetOpts) (*KeySet, error) {
	retain := MaxTTL + Leeway
	if opts != nil && opts.Retain != 0 {
		retain = opts.Retain
	}
	if retain < 0 {
		return nil, errors.New("token: negative key retention")
	}
	k, err := generateKey()
	if err != nil {
		return nil, err
	}
	return &KeySet{retain: retain, keys: []*signingKey{k}}, nil
}

func generateKey() (*signingKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return newSigningKey(priv), nil
}

func newSigningKey(priv ed25519.PrivateKey) *signingKey {
	pub := priv.Public().(ed25519.PublicKey)
	return &signingKey{kid: keyID(pub), priv: priv, pub: pub}
}

// keyID derives the kid from the public key rather than choosing it, so a
// kid names exactly one key and replicas agree on it without coordination.
func keyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(sum[:8])
}

// Rotate makes a newly generated key current. The previous current key stops
// signing but stays verifiable until now + Retain, so tokens it already issued
// keep working until they expire. It returns an error only if the system's
// random source fails.
//
// Other replicas, and verifiers caching the JWKS, refuse tokens from the new
// key until they load the saved set or refetch it, so rotate on one replica,
// save, and have the others reload promptly.
func (s *KeySet) Rotate(now time.Time) error {
	k, err := generateKey()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[len(s.keys)-1].notAfter = now.Add(s.retain)
	s.keys = append(s.keys, k)
	return nil
}

// Prune drops the retired keys whose retention ended at or before now, so
// they no longer appear in the JWKS or the saved set. Verify already refuses
// them; Prune only keeps the set from growing.
func (s *KeySet) Prune(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.keys[:0]
	for _, k := range s.keys {
		if k.notAfter.IsZero() || now.Before(k.notAfter) {
			kept = append(kept, k)
		}
	}
	clear(s.keys[len(kept):])
	s.keys = kept
}

// Current returns the kid of the key that signs new tokens.
func (s *KeySet) Current() string {
	return s.current().kid
}

func (s *KeySet) current() *signingKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.keys[len(s.keys)-1]
}

// verificationKey returns the public key named kid if it may still verify a
// token at now. The kid is the only input: keys or key URLs carried in the
// token header are never trusted.
func (s *KeySet) verificationKey(kid string, now time.Time) (ed25519.PublicKey, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, k := range s.keys {
		if k.kid == kid {
			if !k.notAfter.IsZero() && !now.Before(k.notAfter) {
				return nil, false
			}
			return k.pub, true
		}
	}
	return nil, false
}

// jwk is one public key in the RFC 8037 OKP form.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// PublicJWKS returns the public half of every key held, current and retired,
// as an RFC 7517 JWK Set, for services that verify tokens on their own.
func (s *KeySet) PublicJWKS() []byte {
	s.mu.RLock()
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: make([]jwk, 0, len(s.keys))}
	for _, k := range s.keys {
		set.Keys = append(set.Keys, jwk{
			Kty: "OKP",
			Crv: "Ed25519",
			X:   base64.RawURLEncoding.EncodeToString(k.pub),
			Kid: k.kid,
			Alg: "EdDSA",
			Use: "sig",
		})
	}
	s.mu.RUnlock()
	b, err := json.Marshal(set)
	if err != nil {
		// Only strings go in; Marshal cannot fail.
		panic(fmt.Sprintf("token: marshal jwks: %v", err))
	}
	return b
}

// JWKSHandler serves PublicJWKS. The set is rebuilt per request so a Rotate
// shows at once; max-age is short so verifiers learn a new key within minutes
// of rotation, well inside the retention of the key it replaced.
func (s *KeySet) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		b := s.PublicJWKS()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(b)
	})
}

// savedKeySet is the MarshalPrivate format. The kid is not saved: LoadKeySet
// derives it from the seed, so an edited file cannot pair a kid with another key.
type savedKeySet struct {
	Retain time.Duration `json:"retain_ns"`
	Keys   []savedKey    `json:"keys"`
}

type savedKey struct {
	Seed     string     `json:"seed"`
	NotAfter *time.Time `json:"not_after,omitempty"`
}

// MarshalPrivate returns the whole set, private seeds included, as JSON that
// LoadKeySet reads back. Treat the result as a secret.
func (s *KeySet) MarshalPrivate() ([]byte, error) {
	s.mu.RLock()
	saved := savedKeySet{Retain: s.retain, Keys: make([]savedKey, 0, len(s.keys))}
	for _, k := range s.keys {
		sk := savedKey{Seed: base64.RawURLEncoding.EncodeToString(k.priv.Seed())}
		if !k.notAfter.IsZero() {
			na := k.notAfter.UTC()
			sk.NotAfter = &na
		}
		saved.Keys = append(saved.Keys, sk)
	}
	s.mu.RUnlock()
	b, err := json.Marshal(saved)
	if err != nil {
		return nil, fmt.Errorf("marshal key set: %w", err)
	}
	return b, nil
}

// LoadKeySet reads a set written by MarshalPrivate. It returns an error if
// the data is malformed, a seed is not 32 bytes, a key appears twice, or the
// last key (the current one) has a not-after, or an earlier key lacks one.
func LoadKeySet(data []byte) (*KeySet, error) {
	var saved savedKeySet
	if err := json.Unmarshal(data, &saved); err != nil {
		return nil, fmt.Errorf("load key set: %w", err)
	}
	if len(saved.Keys) == 0 {
		return nil, errors.New("load key set: no keys")
	}
	if saved.Retain < 0 {
		return nil, errors.New("load key set: negative retention")
	}
	s := &KeySet{retain: saved.Retain, keys: make([]*signingKey, 0, len(saved.Keys))}
	seen := make(map[string]bool, len(saved.Keys))
	for i, sk := range saved.Keys {
		seed, err := base64.RawURLEncoding.DecodeString(sk.Seed)
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("load key set: key %d: bad seed", i)
		}
		k := newSigningKey(ed25519.NewKeyFromSeed(seed))
		if seen[k.kid] {
			return nil, fmt.Errorf("load key set: key %d: duplicate", i)
		}
		seen[k.kid] = true
		last := i == len(saved.Keys)-1
		switch {
		case last && sk.NotAfter != nil:
			return nil, errors.New("load key set: current key has a not_after")
		case !last && sk.NotAfter == nil:
			return nil, fmt.Errorf("load key set: retired key %d has no not_after", i)
		case !last:
			k.notAfter = *sk.NotAfter
		}
		s.keys = append(s.keys, k)
	}
	return s, nil
}
