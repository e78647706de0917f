package keys_test

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/store/sqlstore"
	"github.com/latchkey-dev/latchkey/internal/testdb"
)

// fakeClock is a manual clock shared by several managers ("instances").
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now().UTC().Truncate(time.Millisecond)} }

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// countingStore counts key-set reads, to see reloads reach the database.
type countingStore struct {
	store.Store
	lists atomic.Int64
}

func (s *countingStore) ListSigningKeys(ctx context.Context) ([]*store.SigningKey, error) {
	s.lists.Add(1)
	return s.Store.ListSigningKeys(ctx)
}

func rotMaster(t *testing.T) keys.MasterKey {
	k := make(keys.MasterKey, 32)
	_, _ = rand.Read(k)
	return k
}

func rotManager(t *testing.T, st store.Store, master keys.MasterKey, clock *fakeClock) *keys.Manager {
	t.Helper()
	s, err := keys.NewSealer(master, keys.SealPurpose)
	if err != nil {
		t.Fatal(err)
	}
	return &keys.Manager{Store: st, Sealer: s, Alg: jose.RS256, Now: clock.Now, TokenTTL: 10 * time.Minute}
}

func states(t *testing.T, st store.Store) map[string]string {
	t.Helper()
	recs, err := st.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range recs {
		out[r.ID] = r.State
	}
	return out
}

func kidsInState(t *testing.T, st store.Store, state string) []string {
	t.Helper()
	var out []string
	for kid, s := range states(t, st) {
		if s == state {
			out = append(out, kid)
		}
	}
	slices.Sort(out)
	return out
}

func jwksKids(m *keys.Manager) []string {
	var out []string
	for _, k := range m.JWKS(context.Background()).Keys {
		out = append(out, k.KeyID)
	}
	slices.Sort(out)
	return out
}

func signedKid(t *testing.T, m *keys.Manager) (string, string) {
	t.Helper()
	raw, err := m.Sign(context.Background(), "", "JWT", map[string]any{"sub": "alice"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.ParseSigned(raw, keys.Algorithms)
	if err != nil {
		t.Fatal(err)
	}
	return raw, tok.Headers[0].KeyID
}

type engine struct {
	name string
	open func(testing.TB) *sqlstore.Store
}

var engines = []engine{{"sqlite", testdb.SQLite}, {"postgres", testdb.Postgres}}

// The whole life of the key set: Init publishes an active and a next key;
// Rotate promotes next → active and retires the active key, keeping a next
// key published; retired keys stay in the JWKS (and verify) until every
// token they signed has expired.
func TestKeyLifecycle(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			st := e.open(t)
			clock := newFakeClock()
			master := rotMaster(t)
			m := rotManager(t, st, master, clock)
			if err := m.Init(ctx); err != nil {
				t.Fatal(err)
			}
			active, next := kidsInState(t, st, store.KeyActive), kidsInState(t, st, store.KeyNext)
			if len(active) != 1 || len(next) != 1 || len(states(t, st)) != 2 {
				t.Fatalf("after Init: %v", states(t, st))
			}
			k1, k2 := active[0], next[0]
			// Init is idempotent, on this instance and on another one.
			if err := m.Init(ctx); err != nil {
				t.Fatal(err)
			}
			other := rotManager(t, st, master, clock)
			if err := other.Init(ctx); err != nil {
				t.Fatal(err)
			}
			if len(states(t, st)) != 2 {
				t.Fatalf("second Init added keys: %v", states(t, st))
			}
			// The next key is published but nothing is signed with it.
			if got := jwksKids(m); !slices.Equal(got, sortedOf(k1, k2)) {
				t.Fatalf("JWKS %v, want %v", got, sortedOf(k1, k2))
			}
			before, kid := signedKid(t, m)
			if kid != k1 {
				t.Fatalf("signed with %s, want the active key %s", kid, k1)
			}

			// The next key is too young to promote without force: nothing changes.
			if _, err := m.Rotate(ctx, keys.MinNextAge); !errors.Is(err, keys.ErrNotReady) {
				t.Fatalf("early rotate: %v", err)
			}
			if len(states(t, st)) != 2 {
				t.Fatalf("a refused rotation changed the set: %v", states(t, st))
			}
			clock.Advance(keys.MinNextAge)
			if err := m.Reload(ctx); err != nil { // as a running instance would have by now
				t.Fatal(err)
			}
			res, err := m.Rotate(ctx, keys.MinNextAge)
			if err != nil {
				t.Fatal(err)
			}
			if res.Activated != k2 || !slices.Equal(res.Retired, []string{k1}) || res.Created == "" {
				t.Fatalf("rotate result %+v (k1 %s, k2 %s)", res, k1, k2)
			}
			k3 := res.Created
			want := map[string]string{k1: store.KeyRetired, k2: store.KeyActive, k3: store.KeyNext}
			if got := states(t, st); !mapsEqual(got, want) {
				t.Fatalf("after rotate: %v, want %v", got, want)
			}

			// Not reloaded yet: still signing with k1 (instances switch at
			// their next reload, never in the middle of a request).
			if _, kid := signedKid(t, m); kid != k1 {
				t.Fatalf("before reload signed with %s", kid)
			}
			clock.Advance(keys.ReloadInterval)
			if _, kid := signedKid(t, m); kid != k2 {
				t.Fatalf("after reload signed with %s, want %s", kid, k2)
			}
			if got := jwksKids(m); !slices.Equal(got, sortedOf(k1, k2, k3)) {
				t.Fatalf("JWKS after rotation %v, want %v", got, sortedOf(k1, k2, k3))
			}
			var out map[string]any
			if err := m.Verify(ctx, before, "JWT", &out); err != nil {
				t.Fatalf("a token of the retired key no longer verifies: %v", err)
			}

			// keys list's view.
			recs, _ := st.ListSigningKeys(ctx)
			retention := keys.Retention(10*time.Minute, keys.ReloadInterval)
			for _, info := range keys.Describe(recs, clock.Now(), retention) {
				if !info.Published {
					t.Errorf("%s (%s) not published", info.ID, info.State)
				}
				if info.ID == k1 && (info.RetiredAt.IsZero() || info.PublishedUntil != info.RetiredAt.Add(retention)) {
					t.Errorf("retired key info %+v", info)
				}
			}

			// After the retention the retired key leaves the JWKS, and with
			// it verification (every token it signed has expired).
			clock.Advance(retention)
			if got := jwksKids(m); !slices.Equal(got, sortedOf(k2, k3)) {
				t.Fatalf("JWKS after retention %v, want %v", got, sortedOf(k2, k3))
			}
			if err := m.Verify(ctx, before, "JWT", &out); err == nil {
				t.Error("a key past its retention still verifies")
			}
			recs, _ = st.ListSigningKeys(ctx)
			for _, info := range keys.Describe(recs, clock.Now(), retention) {
				if info.Published != (info.ID != k1) {
					t.Errorf("%s (%s): published %v", info.ID, info.State, info.Published)
				}
			}
		})
	}
}

func sortedOf(s ...string) []string { slices.Sort(s); return s }

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A database without a next key (created before next keys existed):
// Rotate publishes one and refuses to promote it yet.
func TestRotateWithoutNextKey(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)
	clock := newFakeClock()
	m := rotManager(t, st, rotMaster(t), clock)
	rec, err := m.NewRecord(jose.RS256, store.KeyActive)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateSigningKey(ctx, rec); err != nil {
		t.Fatal(err)
	}
	res, err := m.Rotate(ctx, 0)
	if !errors.Is(err, keys.ErrNotReady) || res == nil || res.Created == "" || res.Activated != "" {
		t.Fatalf("rotate without a next key: %+v %v", res, err)
	}
	if got := states(t, st); got[rec.ID] != store.KeyActive || got[res.Created] != store.KeyNext {
		t.Fatalf("states %v", got)
	}
	// Forced, the published key is promoted now.
	res, err = m.Rotate(ctx, 0)
	if err != nil || !slices.Equal(res.Retired, []string{rec.ID}) {
		t.Fatalf("second rotate: %+v %v", res, err)
	}
}

// Rotating with another master key fails before changing anything (it
// would create keys no instance can decrypt).
func TestRotateWrongMasterKey(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)
	clock := newFakeClock()
	if err := rotManager(t, st, rotMaster(t), clock).Init(ctx); err != nil {
		t.Fatal(err)
	}
	before := states(t, st)
	_, err := rotManager(t, st, rotMaster(t), clock).Rotate(ctx, 0)
	if err == nil || !strings.Contains(err.Error(), "wrong master key") {
		t.Fatalf("rotate with another master key: %v", err)
	}
	if !mapsEqual(states(t, st), before) {
		t.Fatal("a failed rotation changed the key set")
	}
}

// Another instance may sign with a key we have not loaded yet (two forced
// rotations within one reload interval): verifying its token reloads at
// once. Made-up key ids also reload, but at most once per MinReloadGap.
func TestUnknownKidReloadIsRateLimited(t *testing.T) {
	ctx := context.Background()
	base := testdb.SQLite(t)
	st := &countingStore{Store: base}
	clock := newFakeClock()
	master := rotMaster(t)
	a := rotManager(t, st, master, clock)
	b := rotManager(t, base, master, clock)
	for _, m := range []*keys.Manager{a, b} {
		if err := m.Init(ctx); err != nil {
			t.Fatal(err)
		}
	}
	op := rotManager(t, base, master, clock)
	for range 2 {
		if _, err := op.Rotate(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	tok, kid := signedKid(t, b)
	if slices.Contains(jwksKids(a), kid) {
		t.Fatal("test setup: a already knows the new key")
	}

	// Within MinReloadGap of a's last reload, the unknown kid fails…
	var out map[string]any
	if err := a.Verify(ctx, tok, "JWT", &out); err == nil {
		t.Fatal("verified with a key a never loaded")
	}
	// …and once the gap has passed, it reloads and succeeds.
	clock.Advance(keys.MinReloadGap)
	n := st.lists.Load()
	if err := a.Verify(ctx, tok, "JWT", &out); err != nil {
		t.Fatalf("unknown kid did not trigger a reload: %v", err)
	}
	if st.lists.Load() != n+1 {
		t.Fatalf("%d reloads for one unknown kid", st.lists.Load()-n)
	}

	// Garbage kids: a burst reaches the database at most once per gap.
	clock.Advance(keys.MinReloadGap)
	forger := rotManager(t, testdb.SQLite(t), master, clock)
	if err := forger.Init(ctx); err != nil {
		t.Fatal(err)
	}
	var forged []string
	for range 50 {
		tok, _ := signedKid(t, forger)
		forged = append(forged, tok)
	}
	n = st.lists.Load()
	var wg sync.WaitGroup
	for _, forged := range forged {
		wg.Go(func() {
			var out map[string]any
			if err := a.Verify(ctx, forged, "JWT", &out); err == nil {
				t.Error("a foreign key verified")
			}
		})
	}
	wg.Wait()
	if got := st.lists.Load() - n; got > 1 {
		t.Fatalf("50 tokens with unknown kids caused %d reloads, want at most 1", got)
	}
}

// ReloadEvery shortens how long an instance keeps signing with a key
// another instance retired.
func TestReloadEvery(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)
	clock := newFakeClock()
	master := rotMaster(t)
	m := rotManager(t, st, master, clock)
	m.ReloadEvery = 2 * time.Second
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	_, k1 := signedKid(t, m)
	res, err := rotManager(t, st, master, clock).Rotate(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if _, kid := signedKid(t, m); kid != k1 {
		t.Fatalf("reloaded before ReloadEvery: %s", kid)
	}
	clock.Advance(time.Second)
	if _, kid := signedKid(t, m); kid != res.Activated {
		t.Fatalf("after ReloadEvery signed with %s, want %s", kid, res.Activated)
	}
}

// initConcurrently makes n managers with newManager and runs their Init at
// the same moment, as instances starting together on an empty database
// would. On PostgreSQL each has its own pool (a separate process would);
// SQLite handles share the file either way.
func initConcurrently(t *testing.T, engine string, base *sqlstore.Store, n int, newManager func(store.Store) *keys.Manager) []*keys.Manager {
	t.Helper()
	ctx := context.Background()
	ms := make([]*keys.Manager, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range ms {
		st := store.Store(base)
		if engine == "postgres" {
			h, err := base.Reopen(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { h.Close() })
			st = h
		}
		ms[i] = newManager(st)
		wg.Go(func() { <-start; errs[i] = ms[i].Init(ctx) })
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
	}
	return ms
}

// Instances starting together on an empty database end up with one key
// set: one active and one next key, and every instance signs with the same
// key and publishes both from the first request.
func TestConcurrentInitConverges(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			base := e.open(t)
			clock := newFakeClock()
			master := rotMaster(t)
			ms := initConcurrently(t, e.name, base, 6, func(st store.Store) *keys.Manager {
				m := rotManager(t, st, master, clock)
				m.KidSeed = master.Derive("signing-key-ids")
				return m
			})
			if got := states(t, base); len(got) != 2 || len(kidsInState(t, base, store.KeyActive)) != 1 {
				t.Fatalf("after concurrent Init: %v", got)
			}
			want := jwksKids(ms[0])
			_, kid := signedKid(t, ms[0])
			for i, m := range ms {
				if _, k := signedKid(t, m); k != kid {
					t.Errorf("instance %d signs with %s, instance 0 with %s", i, k, kid)
				}
				if got := jwksKids(m); !slices.Equal(got, want) {
					t.Errorf("instance %d publishes %v, instance 0 %v", i, got, want)
				}
			}
		})
	}
}
