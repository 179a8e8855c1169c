package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/internal/token"
)

// Defaults for KeyStoreOpts.
const (
	// DefaultRotateEvery is how long a key signs before a new one replaces it.
	DefaultRotateEvery = 24 * time.Hour
	// DefaultReloadEvery is how often each replica reads the stored set.
	DefaultReloadEvery = 30 * time.Second
)

// unknownKidGap spaces the reloads a token with an unknown kid triggers:
// anyone can send such a token, so they cost at most one read a second.
const unknownKidGap = time.Second

// reloadTimeout bounds one reload, whoever's request started it.
const reloadTimeout = 5 * time.Second

// KeyStoreParams are NewKeyStore's inputs.
type KeyStoreParams struct {
	// DB holds the key set (table token_keys), shared by every replica.
	DB *db.DB
	// Manager signs and verifies with the stored set; the store calls its
	// SetKeys whenever the set changes.
	Manager *Manager
	// Logger receives reload failures and rotations.
	Logger *slog.Logger
}

// KeyStoreOpts are NewKeyStore's optional settings; nil means defaults.
type KeyStoreOpts struct {
	// RotateEvery is how long a key signs before a new one replaces it
	// (default DefaultRotateEvery).
	RotateEvery time.Duration
	// ReloadEvery is how often Run reads the stored set (default
	// DefaultReloadEvery).
	ReloadEvery time.Duration
}

// KeyStore keeps a Manager's key set in step with the one stored in
// PostgreSQL, so every replica signs with the same key and verifies the
// others' tokens. Each replica runs Run; whichever finds the current key
// older than RotateEvery rotates it, under the row's lock so only one does.
//
// The others learn of a rotation when they next reload, up to ReloadEvery
// later. Meanwhile they keep signing with the retired key, so a set created
// here retains retired keys for token.MaxTTL + token.Leeway + 2×ReloadEvery;
// and a token signed with the new key makes them reload at once (see
// Manager.VerifyFunc). Anyone can send a token with an unknown kid, so such
// reloads happen at most once a second: within a second of one, another
// unknown kid is refused without reloading.
//
// A KeyStore is safe for concurrent use.
type KeyStore struct {
	db          *db.DB
	m           *Manager
	logger      *slog.Logger
	rotateEvery time.Duration
	reloadEvery time.Duration

	// sem serialises syncs and guards the fields below; it is a channel
	// so a request waiting on another's reload can give up with its ctx.
	sem    chan struct{}
	loaded []byte // the stored form of the set m holds
	// lastUnknown is when the last reload for an unknown kid started (the
	// manager's clock). Run's reloads do not count: one may have read the
	// row just before another replica rotated it.
	lastUnknown time.Time
}

// NewKeyStore loads the stored key set into p.Manager, creating it if none
// is stored yet (replicas starting together on an empty database end up
// with one set between them), or rotating it if its key is due. From then
// on the manager reloads the set when it meets an unknown kid. It returns
// the database's errors, or an error if the stored set cannot be read.
func NewKeyStore(ctx context.Context, p KeyStoreParams, opts *KeyStoreOpts) (*KeyStore, error) {
	if p.DB == nil || p.Manager == nil {
		return nil, errors.New("session: key store needs DB and Manager")
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	s := &KeyStore{
		db: p.DB, m: p.Manager, logger: p.Logger,
		rotateEvery: DefaultRotateEvery, reloadEvery: DefaultReloadEvery,
		sem: make(chan struct{}, 1),
	}
	if opts != nil && opts.RotateEvery != 0 {
		s.rotateEvery = opts.RotateEvery
	}
	if opts != nil && opts.ReloadEvery != 0 {
		s.reloadEvery = opts.ReloadEvery
	}
	if s.rotateEvery < 0 || s.reloadEvery < 0 {
		return nil, errors.New("session: negative key rotation or reload period")
	}
	if err := s.sync(ctx, false); err != nil {
		return nil, err
	}
	reload := s.reloadUnknown
	s.m.reload.Store(&reload)
	return s, nil
}

// Run reloads the stored set every ReloadEvery, rotating it when its key is
// due, until ctx is done. Failures are logged and retried at the next tick;
// the manager keeps the set it has meanwhile.
func (s *KeyStore) Run(ctx context.Context) error {
	t := time.NewTicker(s.reloadEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, reloadTimeout)
		if err := s.sync(rctx, false); err != nil && ctx.Err() == nil {
			s.logger.WarnContext(ctx, "reload access token keys", "error", err)
		}
		cancel()
	}
}

// Reload reads the stored set now, rotating it if its key is due, and
// hands it to the manager if it changed. It returns the database's errors.
func (s *KeyStore) Reload(ctx context.Context) error { return s.sync(ctx, false) }

// Rotate replaces the signing key now, whatever its age, stores the set
// and hands it to the manager. Other replicas follow within ReloadEvery, or
// at their first token from the new key. The old key still verifies until
// its retention ends, so this does not cut off a leaked key at once. It
// returns the database's errors.
func (s *KeyStore) Rotate(ctx context.Context) error { return s.sync(ctx, true) }

// reloadUnknown is the manager's hook for a token with an unknown kid. A
// request arriving while another's reload runs waits for it, then finds
// the set just reloaded and verifies against that; after that, for a
// second, unknown kids are refused without reloading.
func (s *KeyStore) reloadUnknown(ctx context.Context) {
	if !s.lock(ctx) {
		return
	}
	defer s.unlock()
	now := s.m.now()
	if !s.lastUnknown.IsZero() && now.Sub(s.lastUnknown) < unknownKidGap {
		return
	}
	s.lastUnknown = now
	// The caller's cancellation must not spoil the reload for requests
	// waiting on it.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reloadTimeout)
	defer cancel()
	if err := s.syncLocked(rctx, false); err != nil {
		s.logger.WarnContext(ctx, "reload access token keys for an unknown kid", "error", err)
	}
}

// lock takes sem, or gives up and returns false when ctx is done first.
func (s *KeyStore) lock(ctx context.Context) bool {
	select {
	case s.sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *KeyStore) unlock() { <-s.sem }

// sync reads the stored set and installs it. When none is stored, or its
// key is due for rotation (or force), it creates or rotates it under the
// row's lock, rechecking there in case another replica just did.
func (s *KeyStore) sync(ctx context.Context, force bool) error {
	if !s.lock(ctx) {
		return ctx.Err()
	}
	defer s.unlock()
	return s.syncLocked(ctx, force)
}

// syncLocked is sync for a caller holding sem.
func (s *KeyStore) syncLocked(ctx context.Context, force bool) error {
	data, rotated, err := s.db.TokenKeys(ctx)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return err
	}
	if err == nil && !force && !s.due(rotated) {
		return s.install(data)
	}
	rotatedKid := ""
	data, _, err = s.db.UpdateTokenKeys(ctx, func(cur []byte, rotated time.Time) ([]byte, time.Time, error) {
		now := s.m.now()
		rotatedKid = ""
		if cur == nil {
			ks, err := token.NewKeySet(&token.KeySetOpts{Retain: token.MaxTTL + token.Leeway + 2*s.reloadEvery})
			if err != nil {
				return nil, time.Time{}, err
			}
			next, err := ks.MarshalPrivate()
			return next, now, err
		}
		if !force && !s.due(rotated) {
			return nil, time.Time{}, nil // another replica rotated first
		}
		ks, err := token.LoadKeySet(cur)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("stored access token keys: %w", err)
		}
		if err := ks.Rotate(now); err != nil {
			return nil, time.Time{}, err
		}
		ks.Prune(now)
		rotatedKid = ks.Current()
		next, err := ks.MarshalPrivate()
		return next, now, err
	})
	if err != nil {
		return err
	}
	if rotatedKid != "" {
		s.logger.InfoContext(ctx, "rotated access token signing key", "kid", rotatedKid)
	}
	return s.install(data)
}

// due reports whether a key made current at rotated has signed long enough.
func (s *KeyStore) due(rotated time.Time) bool {
	return !s.m.now().Before(rotated.Add(s.rotateEvery))
}

// install hands the stored set data to the manager unless it already holds
// it. The caller holds sem.
func (s *KeyStore) install(data []byte) error {
	if bytes.Equal(data, s.loaded) {
		return nil
	}
	ks, err := token.LoadKeySet(data)
	if err != nil {
		return fmt.Errorf("stored access token keys: %w", err)
	}
	s.m.SetKeys(ks)
	s.loaded = data
	return nil
}
