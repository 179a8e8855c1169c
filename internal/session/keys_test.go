package session

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quarters-dev/quarters/db"
	"github.com/quarters-dev/quarters/db/dbtest"
	"github.com/quarters-dev/quarters/internal/auth"
	"github.com/quarters-dev/quarters/internal/tenancy"
	"github.com/quarters-dev/quarters/internal/tenant"
	"github.com/quarters-dev/quarters/internal/token"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// clock is a settable clock shared by the replicas of a test.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// subject is the member the tests' tokens are for, and members is the
// tenant record a cache loads for it: key sharing is under test here, not
// the tenant lookup (package router's tests run the real one).
var (
	subjectUser   = uuid.New()
	subjectTenant = uuid.New()
)

func members() *tenant.Cache {
	return tenant.NewCache(tenant.CacheParams{Load: func(_ context.Context, id uuid.UUID) (tenancy.Tenant, error) {
		return tenancy.Tenant{ID: id, Slug: "acme", Active: true, Members: map[uuid.UUID]tenancy.Member{
			subjectUser: {Role: token.RoleAdmin, Version: 3},
		}}, nil
	}})
}

// replica is one server's share of the key machinery: its own pool on the
// shared database, its manager and its key store.
type replica struct {
	m      *Manager
	keys   *KeyStore
	verify auth.VerifyTokenFunc
}

func openDB(t *testing.T, appURL string) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), appURL, &db.OpenOpts{MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(d.Close)
	return d
}

func newReplica(t *testing.T, appURL string, c *clock) *replica {
	t.Helper()
	m, err := NewManager(Params{Now: c.Now})
	require.NoError(t, err)
	ks, err := NewKeyStore(context.Background(), KeyStoreParams{DB: openDB(t, appURL), Manager: m}, nil)
	require.NoError(t, err)
	return &replica{m: m, keys: ks, verify: m.VerifyFunc(members())}
}

// sign issues an access token as m.issue does, without the refresh token.
func (r *replica) sign(t testing.TB) string {
	t.Helper()
	s, err := r.m.issuer.Load().Sign(token.Claims{
		RegisteredClaims: jwtSubject(subjectUser),
		TenantID:         subjectTenant.String(),
		Role:             token.RoleAdmin,
		Version:          3,
	}, r.m.now())
	require.NoError(t, err)
	return s
}

func (r *replica) requireAccepts(t *testing.T, tok string) {
	t.Helper()
	p, err := r.verify(context.Background(), tok)
	require.NoError(t, err)
	require.Equal(t, subjectUser, p.UserID)
	require.Equal(t, subjectTenant, p.TenantID)
	require.Equal(t, token.RoleAdmin, p.Role.String())
}

// storedKids reads the stored set's kids, current last.
func storedKids(t *testing.T, d *db.DB) []string {
	t.Helper()
	data, _, err := d.TokenKeys(context.Background())
	require.NoError(t, err)
	ks, err := token.LoadKeySet(data)
	require.NoError(t, err)
	var set struct {
		Keys []struct{ Kid string } `json:"keys"`
	}
	require.NoError(t, json.Unmarshal(ks.PublicJWKS(), &set))
	kids := make([]string, 0, len(set.Keys))
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	require.Equal(t, ks.Current(), kids[len(kids)-1])
	return kids
}

func TestKeyStoreReplicasShareKeys(t *testing.T) {
	t.Parallel()
	appURL, _ := dbtest.NewURLs(t)
	c := newClock()
	a, b := newReplica(t, appURL, c), newReplica(t, appURL, c)

	require.Equal(t, a.m.Keys().Current(), b.m.Keys().Current())
	require.Equal(t, []string{a.m.Keys().Current()}, storedKids(t, openDB(t, appURL)))
	// Each verifies the other's tokens.
	b.requireAccepts(t, a.sign(t))
	a.requireAccepts(t, b.sign(t))

	// A third replica starting later joins the same set.
	c3 := newReplica(t, appURL, c)
	require.Equal(t, a.m.Keys().Current(), c3.m.Keys().Current())
	c3.requireAccepts(t, a.sign(t))
}

func TestKeyStoreRotation(t *testing.T) {
	t.Parallel()
	appURL, _ := dbtest.NewURLs(t)
	c := newClock()
	a, b := newReplica(t, appURL, c), newReplica(t, appURL, c)
	kid0 := a.m.Keys().Current()

	// Not due yet: reloading changes nothing.
	c.Add(DefaultRotateEvery - time.Minute)
	require.NoError(t, a.keys.Reload(context.Background()))
	require.Equal(t, kid0, a.m.Keys().Current())

	// Due: a rotates and stores; b has not reloaded and still signs with
	// the old key.
	c.Add(2 * time.Minute)
	old := a.sign(t) // a token of the old key that is still live
	require.NoError(t, a.keys.Reload(context.Background()))
	kid1 := a.m.Keys().Current()
	require.NotEqual(t, kid0, kid1)
	require.Equal(t, []string{kid0, kid1}, storedKids(t, openDB(t, appURL)))
	require.Equal(t, kid0, b.m.Keys().Current())

	// b meets a token of the new key: it reloads at once and accepts it.
	fresh := a.sign(t)
	b.requireAccepts(t, fresh)
	require.Equal(t, kid1, b.m.Keys().Current())
	// The retired key still verifies on both while its tokens live.
	a.requireAccepts(t, old)
	b.requireAccepts(t, old)

	// b's reload found the rotation done: no second one.
	require.NoError(t, b.keys.Reload(context.Background()))
	require.Equal(t, []string{kid0, kid1}, storedKids(t, openDB(t, appURL)))
}

func TestKeyStoreRotatesOnceWhenAllAreDue(t *testing.T) {
	t.Parallel()
	appURL, _ := dbtest.NewURLs(t)
	c := newClock()
	rs := make([]*replica, 4)
	for i := range rs {
		rs[i] = newReplica(t, appURL, c)
	}
	kid0 := rs[0].m.Keys().Current()
	c.Add(DefaultRotateEvery)
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Go(func() { assert.NoError(t, r.keys.Reload(context.Background())) })
	}
	wg.Wait()
	kids := storedKids(t, openDB(t, appURL))
	require.Len(t, kids, 2, "one rotation, whoever got the lock first")
	require.Equal(t, kid0, kids[0])
	for _, r := range rs {
		require.Equal(t, kids[1], r.m.Keys().Current())
	}
}

func TestKeyStoreRotatePrunes(t *testing.T) {
	t.Parallel()
	appURL, _ := dbtest.NewURLs(t)
	c := newClock()
	a := newReplica(t, appURL, c)
	kid0 := a.m.Keys().Current()
	require.NoError(t, a.keys.Rotate(context.Background()))
	kid1 := a.m.Keys().Current()
	require.Equal(t, []string{kid0, kid1}, storedKids(t, openDB(t, appURL)))
	// The next rotation, past kid0's retention, drops it.
	c.Add(token.MaxTTL + token.Leeway + 2*DefaultReloadEvery)
	require.NoError(t, a.keys.Rotate(context.Background()))
	kid2 := a.m.Keys().Current()
	require.Equal(t, []string{kid1, kid2}, storedKids(t, openDB(t, appURL)))
}

func TestKeyStoreConcurrentFirstStart(t *testing.T) {
	t.Parallel()
	appURL, _ := dbtest.NewURLs(t)
	c := newClock()
	const n = 8
	rs := make([]*replica, n)
	ready := make(chan struct{})
	var wg sync.WaitGroup
	for i := range rs {
		d := openDB(t, appURL)
		require.NoError(t, d.Ping(context.Background()))
		wg.Go(func() {
			<-ready
			m, err := NewManager(Params{Now: c.Now})
			if !assert.NoError(t, err) {
				return
			}
			ks, err := NewKeyStore(context.Background(), KeyStoreParams{DB: d, Manager: m}, nil)
			if !assert.NoError(t, err) {
				return
			}
			rs[i] = &replica{m: m, keys: ks, verify: m.VerifyFunc(members())}
		})
	}
	close(ready)
	wg.Wait()
	require.False(t, t.Failed())
	kids := storedKids(t, openDB(t, appURL))
	require.Len(t, kids, 1)
	for _, r := range rs {
		require.Equal(t, kids[0], r.m.Keys().Current())
	}
	rs[n-1].requireAccepts(t, rs[0].sign(t))
}

// TestUpdateTokenKeysCreateRace forces the race NewKeyStore's creation
// must survive: two transactions both find no row and both create one.
func TestUpdateTokenKeysCreateRace(t *testing.T) {
	t.Parallel()
	appURL, _ := dbtest.NewURLs(t)
	var (
		bothRead sync.WaitGroup
		calls    atomic.Int32
		results  [2][]byte
		wg       sync.WaitGroup
	)
	bothRead.Add(2)
	for i := range 2 {
		d := openDB(t, appURL)
		wg.Go(func() {
			first := true
			got, _, err := d.UpdateTokenKeys(context.Background(), func(cur []byte, _ time.Time) ([]byte, time.Time, error) {
				calls.Add(1)
				if first {
					first = false
					assert.Nil(t, cur)
					bothRead.Done()
					bothRead.Wait()
					return []byte{byte('a' + i)}, time.Now(), nil
				}
				assert.NotNil(t, cur, "the loser sees the winner's set")
				return nil, time.Time{}, nil
			})
			assert.NoError(t, err)
			results[i] = got
		})
	}
	wg.Wait()
	require.Equal(t, int32(3), calls.Load(), "the loser's fn runs again")
	require.Equal(t, results[0], results[1])
	stored, _, err := openDB(t, appURL).TokenKeys(context.Background())
	require.NoError(t, err)
	require.Equal(t, results[0], stored)
}

func TestTokenKeysNotFound(t *testing.T) {
	t.Parallel()
	appURL, _ := dbtest.NewURLs(t)
	_, _, err := openDB(t, appURL).TokenKeys(context.Background())
	require.ErrorIs(t, err, db.ErrNotFound)
}

func TestUnknownKidReloadIsRateLimited(t *testing.T) {
	t.Parallel()
	appURL, _ := dbtest.NewURLs(t)
	c := newClock()
	a := newReplica(t, appURL, c)
	require.True(t, a.keys.lastUnknown.IsZero())

	other, err := NewManager(Params{Now: c.Now})
	require.NoError(t, err)
	forged := (&replica{m: other}).sign(t)

	// The first unknown kid reloads, then is refused (the kid is nowhere).
	_, err = a.verify(context.Background(), forged)
	require.ErrorIs(t, err, auth.ErrInvalidToken)
	require.ErrorIs(t, err, token.ErrUnknownKey)
	first := c.Now()
	require.Equal(t, first, a.keys.lastUnknown)

	// Within a second: refused without another reload.
	c.Add(unknownKidGap / 2)
	_, err = a.verify(context.Background(), forged)
	require.ErrorIs(t, err, token.ErrUnknownKey)
	require.Equal(t, first, a.keys.lastUnknown)

	// A second on: reloads again.
	c.Add(unknownKidGap)
	_, err = a.verify(context.Background(), forged)
	require.ErrorIs(t, err, token.ErrUnknownKey)
	require.Equal(t, c.Now(), a.keys.lastUnknown)

	// Periodic reloads do not hold the next unknown kid back.
	c.Add(unknownKidGap)
	require.NoError(t, a.keys.Reload(context.Background()))
	_, err = a.verify(context.Background(), forged)
	require.ErrorIs(t, err, token.ErrUnknownKey)
	require.Equal(t, c.Now(), a.keys.lastUnknown)

	// A manager without a key store refuses at once.
	_, err = other.VerifyFunc(members())(context.Background(), a.sign(t))
	require.ErrorIs(t, err, token.ErrUnknownKey)
}

func TestKeyStoreRun(t *testing.T) {
	t.Parallel()
	appURL, _ := dbtest.NewURLs(t)
	c := newClock()
	a := newReplica(t, appURL, c)
	m, err := NewManager(Params{Now: c.Now})
	require.NoError(t, err)
	b, err := NewKeyStore(context.Background(), KeyStoreParams{DB: openDB(t, appURL), Manager: m}, &KeyStoreOpts{ReloadEvery: 10 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	require.NoError(t, a.keys.Rotate(context.Background()))
	require.Eventually(t, func() bool { return m.Keys().Current() == a.m.Keys().Current() }, 5*time.Second, 10*time.Millisecond)
}

func TestNewKeyStoreRefusesCorruptSet(t *testing.T) {
	t.Parallel()
	appURL, _ := dbtest.NewURLs(t)
	d := openDB(t, appURL)
	_, _, err := d.UpdateTokenKeys(context.Background(), func([]byte, time.Time) ([]byte, time.Time, error) {
		return []byte(`{"keys":[]}`), time.Now(), nil
	})
	require.NoError(t, err)
	m, err := NewManager(Params{})
	require.NoError(t, err)
	_, err = NewKeyStore(context.Background(), KeyStoreParams{DB: d, Manager: m}, nil)
	require.ErrorContains(t, err, "no keys")
}

// BenchmarkVerifyAccessToken is the whole check an access token meets on
// every call: signature and claims, then the member's version in the warm
// tenant cache.
func BenchmarkVerifyAccessToken(b *testing.B) {
	m, err := NewManager(Params{})
	require.NoError(b, err)
	r := &replica{m: m, verify: m.VerifyFunc(members())}
	tok := r.sign(b)
	ctx := context.Background()
	_, err = r.verify(ctx, tok) // warm the cache
	require.NoError(b, err)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := r.verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
