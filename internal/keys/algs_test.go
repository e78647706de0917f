package keys_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/testdb"
)

// Tests of a key set with several algorithms: signing_alg signs access
// tokens, RS256 (always) and id_token_algs sign the ID tokens of clients
// that ask for them.

// multiManager keeps keys for alg and more.
func multiManager(t *testing.T, st store.Store, master keys.MasterKey, clock *fakeClock, alg jose.SignatureAlgorithm, more ...jose.SignatureAlgorithm) *keys.Manager {
	t.Helper()
	m := rotManager(t, st, master, clock)
	m.Alg, m.Algs = alg, more
	return m
}

// byAlg returns, per algorithm, the kids in state.
func byAlg(t *testing.T, st store.Store, state string) map[string][]string {
	t.Helper()
	recs, err := st.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, r := range recs {
		if r.State == state {
			out[r.Alg] = append(out[r.Alg], r.ID)
		}
	}
	return out
}

// signAs signs with alg's key and returns the token and its header.
func signAs(t *testing.T, m *keys.Manager, alg jose.SignatureAlgorithm) (string, jose.Header) {
	t.Helper()
	raw, err := m.Sign(context.Background(), alg, "JWT", map[string]any{"sub": "alice"})
	if err != nil {
		t.Fatalf("sign %s: %v", alg, err)
	}
	tok, err := jwt.ParseSigned(raw, keys.Algorithms)
	if err != nil {
		t.Fatal(err)
	}
	return raw, tok.Headers[0]
}

func TestSeveralAlgorithms(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)
	clock := newFakeClock()
	master := rotMaster(t)
	// signing_alg ES256; RS256 and EdDSA for clients' ID tokens.
	m := multiManager(t, st, master, clock, jose.ES256, jose.RS256, jose.EdDSA, jose.RS256)
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if got := m.Algorithms(); !slices.Equal(got, []string{"RS256", "ES256", "EdDSA"}) {
		t.Fatalf("Algorithms %v", got)
	}
	active, next := byAlg(t, st, store.KeyActive), byAlg(t, st, store.KeyNext)
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		if len(active[alg]) != 1 || len(next[alg]) != 1 {
			t.Fatalf("%s after Init: active %v next %v", alg, active[alg], next[alg])
		}
	}
	if n := len(states(t, st)); n != 6 {
		t.Fatalf("Init stored %d keys, want 6", n)
	}
	// Init is idempotent for every algorithm.
	if err := multiManager(t, st, master, clock, jose.ES256, jose.RS256, jose.EdDSA).Init(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(states(t, st)); n != 6 {
		t.Fatalf("a second Init added keys: %d", n)
	}

	// Each algorithm signs with its own active key; "" is signing_alg.
	verifier := rotManager(t, st, master, clock) // RS256 only: verification is by kid, of any algorithm
	if err := verifier.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	for _, alg := range []jose.SignatureAlgorithm{"", jose.RS256, jose.ES256, jose.EdDSA} {
		raw, h := signAs(t, m, alg)
		want := alg
		if want == "" {
			want = jose.ES256
		}
		if h.Algorithm != string(want) || h.KeyID != active[string(want)][0] {
			t.Errorf("Sign(%q): alg %s kid %s, want %s %s", alg, h.Algorithm, h.KeyID, want, active[string(want)][0])
		}
		var out map[string]any
		if err := verifier.Verify(ctx, raw, "JWT", &out); err != nil || out["sub"] != "alice" {
			t.Errorf("verify a %s token: %v %v", want, err, out)
		}
	}

	// The JWKS publishes all six keys, each with its algorithm.
	algOf := map[string]string{}
	for _, k := range m.JWKS(ctx).Keys {
		algOf[k.KeyID] = k.Algorithm
	}
	if len(algOf) != 6 {
		t.Fatalf("JWKS has %d keys, want 6", len(algOf))
	}
	for _, l := range []map[string][]string{active, next} {
		for alg, kids := range l {
			if algOf[kids[0]] != alg {
				t.Errorf("JWKS: key %s has alg %q, want %s", kids[0], algOf[kids[0]], alg)
			}
		}
	}

	// An algorithm outside the set does not sign, even with a key of it in
	// the store; an unknown one is refused.
	esOnly := multiManager(t, st, master, clock, jose.ES256)
	if err := esOnly.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := esOnly.Sign(ctx, jose.RS256, "JWT", map[string]any{}); err == nil || !strings.Contains(err.Error(), "no active RS256 signing key") {
		t.Errorf("sign with an algorithm outside the set: %v", err)
	}
	if _, err := m.Sign(ctx, jose.HS256, "JWT", map[string]any{}); err == nil || !strings.Contains(err.Error(), "unsupported algorithm") {
		t.Errorf("sign HS256: %v", err)
	}
}

// One rotation moves every algorithm's keys one step, with the guarantees
// of a single algorithm: refused while any next key is too young, a new
// next key per algorithm, the old active keys verifying until retention.
func TestRotateEveryAlgorithm(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			st := e.open(t)
			clock := newFakeClock()
			master := rotMaster(t)
			m := multiManager(t, st, master, clock, jose.ES256, jose.RS256, jose.EdDSA)
			if err := m.Init(ctx); err != nil {
				t.Fatal(err)
			}
			active0, next0 := byAlg(t, st, store.KeyActive), byAlg(t, st, store.KeyNext)
			before := map[jose.SignatureAlgorithm]string{}
			for _, alg := range keys.Algorithms {
				before[alg], _ = signAs(t, m, alg)
			}

			_, err := m.Rotate(ctx, keys.MinNextAge)
			if !errors.Is(err, keys.ErrNotReady) || !strings.Contains(err.Error(), "next RS256 key") || !strings.Contains(err.Error(), "next EdDSA key") {
				t.Fatalf("early rotate: %v", err)
			}
			if len(states(t, st)) != 6 {
				t.Fatalf("a refused rotation changed the set: %v", states(t, st))
			}
			clock.Advance(keys.MinNextAge)
			res, err := m.Rotate(ctx, keys.MinNextAge)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Algorithms) != 3 {
				t.Fatalf("rotate result %+v", res)
			}
			var allRetired []string
			for i, r := range res.Algorithms {
				alg := keys.Algorithms[i] // in the order of keys.Algorithms
				if r.Alg != string(alg) || r.Activated != next0[r.Alg][0] || !slices.Equal(r.Retired, active0[r.Alg]) || r.Created == "" {
					t.Errorf("%s: %+v (was active %v, next %v)", alg, r, active0[r.Alg], next0[r.Alg])
				}
				allRetired = append(allRetired, r.Retired...)
			}
			// The top-level fields are signing_alg's (ES256), retired all.
			es := res.Algorithms[1]
			if res.Activated != es.Activated || res.Created != es.Created || !slices.Equal(sortedOf(res.Retired...), sortedOf(allRetired...)) {
				t.Errorf("top-level result %+v", res)
			}
			if len(states(t, st)) != 9 {
				t.Fatalf("after rotation %d keys, want 9", len(states(t, st)))
			}

			// After the reload interval every algorithm signs with its new key,
			// and what the old keys signed still verifies.
			clock.Advance(keys.ReloadInterval)
			for i, alg := range keys.Algorithms {
				if _, h := signAs(t, m, alg); h.KeyID != res.Algorithms[i].Activated {
					t.Errorf("%s signs with %s, want %s", alg, h.KeyID, res.Algorithms[i].Activated)
				}
				var out map[string]any
				if err := m.Verify(ctx, before[alg], "JWT", &out); err != nil {
					t.Errorf("a %s token of the retired key: %v", alg, err)
				}
			}
			if n := len(m.JWKS(ctx).Keys); n != 9 {
				t.Errorf("JWKS after rotation: %d keys, want 9", n)
			}
			clock.Advance(keys.Retention(10*time.Minute, keys.ReloadInterval))
			if n := len(m.JWKS(ctx).Keys); n != 6 {
				t.Errorf("JWKS after retention: %d keys, want 6", n)
			}
			for _, alg := range keys.Algorithms {
				var out map[string]any
				if err := m.Verify(ctx, before[alg], "JWT", &out); err == nil {
					t.Errorf("a %s key past its retention still verifies", alg)
				}
			}
		})
	}
}

// An algorithm added later (id_token_algs gained EdDSA) gets its keys at
// the next start; until its next key is old enough, rotation refuses for
// every algorithm, so the set never rotates half.
func TestRotateWaitsForEveryAlgorithm(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)
	clock := newFakeClock()
	master := rotMaster(t)
	if err := multiManager(t, st, master, clock, jose.ES256, jose.RS256).Init(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(keys.MinNextAge)
	m := multiManager(t, st, master, clock, jose.ES256, jose.RS256, jose.EdDSA)
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	before := states(t, st)
	if len(before) != 6 {
		t.Fatalf("after adding EdDSA: %v", before)
	}
	_, err := m.Rotate(ctx, keys.MinNextAge)
	if !errors.Is(err, keys.ErrNotReady) || !strings.Contains(err.Error(), "next EdDSA key") || strings.Contains(err.Error(), "ES256") {
		t.Fatalf("rotate with a young EdDSA next key: %v", err)
	}
	if !mapsEqual(states(t, st), before) {
		t.Fatal("a refused rotation changed the set")
	}
	// Forced, all three rotate.
	res, err := m.Rotate(ctx, 0)
	if err != nil || len(res.Algorithms) != 3 {
		t.Fatalf("forced rotation: %+v %v", res, err)
	}
	for _, r := range res.Algorithms {
		if r.Activated == "" || len(r.Retired) != 1 {
			t.Errorf("%+v", r)
		}
	}
}

// A database without any key (rotate before the first start): one next
// key per algorithm is created and published, nothing promoted.
func TestRotateCreatesNextKeyPerAlgorithm(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)
	m := multiManager(t, st, rotMaster(t), newFakeClock(), jose.ES256, jose.RS256)
	res, err := m.Rotate(ctx, 0)
	if !errors.Is(err, keys.ErrNotReady) || len(res.Algorithms) != 2 || res.Created == "" || res.Activated != "" {
		t.Fatalf("rotate on an empty set: %+v %v", res, err)
	}
	if n := byAlg(t, st, store.KeyNext); len(n["RS256"]) != 1 || len(n["ES256"]) != 1 || len(states(t, st)) != 2 {
		t.Fatalf("next keys %v", n)
	}
	if res, err = m.Rotate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if a := byAlg(t, st, store.KeyActive); len(a["RS256"]) != 1 || len(a["ES256"]) != 1 || res.Activated != a["ES256"][0] {
		t.Fatalf("active keys %v, result %+v", a, res)
	}
}

// Switching signing_alg (EdDSA → ES256; RS256 is in both sets): the new
// algorithm gets keys at the next start and signs at once; the old one
// signs no more, but its keys stay published and keep verifying what they
// signed until a rotation retires them and their retention ends. An
// upgrade from the old RS256 default to ES256 keeps the RS256 keys as they
// were.
func TestSwitchSigningAlgorithm(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)
	clock := newFakeClock()
	master := rotMaster(t)
	old := multiManager(t, st, master, clock, jose.EdDSA, jose.RS256)
	if err := old.Init(ctx); err != nil {
		t.Fatal(err)
	}
	edTok, _ := signAs(t, old, jose.EdDSA)
	rsTok, rsHeader := signAs(t, old, jose.RS256)
	ed := byAlg(t, st, store.KeyActive)["EdDSA"][0]

	m := multiManager(t, st, master, clock, jose.ES256, jose.RS256)
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if got := m.Algorithms(); !slices.Equal(got, []string{"RS256", "ES256"}) {
		t.Fatalf("Algorithms %v", got)
	}
	if _, h := signAs(t, m, ""); h.Algorithm != "ES256" {
		t.Fatalf("signs %s after the switch", h.Algorithm)
	}
	if _, h := signAs(t, m, jose.RS256); h.KeyID != rsHeader.KeyID {
		t.Fatalf("the RS256 key changed: %s, was %s", h.KeyID, rsHeader.KeyID)
	}
	if _, err := m.Sign(ctx, jose.EdDSA, "JWT", map[string]any{}); err == nil {
		t.Fatal("signed with the algorithm switched away from")
	}
	var out map[string]any
	for _, tok := range []string{edTok, rsTok} {
		if err := m.Verify(ctx, tok, "JWT", &out); err != nil {
			t.Fatalf("a token of before the switch: %v", err)
		}
	}
	clock.Advance(keys.MinNextAge)
	res, err := m.Rotate(ctx, keys.MinNextAge)
	if err != nil {
		t.Fatal(err)
	}
	// EdDSA's active and next keys retire; nothing of it is activated or created.
	var edRot *keys.AlgRotation
	for i := range res.Algorithms {
		if res.Algorithms[i].Alg == "EdDSA" {
			edRot = &res.Algorithms[i]
		}
	}
	if edRot == nil || edRot.Activated != "" || edRot.Created != "" || len(edRot.Retired) != 2 || !slices.Contains(edRot.Retired, ed) {
		t.Fatalf("EdDSA after rotation: %+v (result %+v)", edRot, res)
	}
	if got := byAlg(t, st, store.KeyNext)["EdDSA"]; len(got) != 0 {
		t.Fatalf("EdDSA next keys left: %v", got)
	}
	clock.Advance(keys.ReloadInterval)
	if err := m.Verify(ctx, edTok, "JWT", &out); err != nil {
		t.Fatalf("an EdDSA token before its key's retention ended: %v", err)
	}
	clock.Advance(keys.Retention(10*time.Minute, keys.ReloadInterval))
	for _, k := range m.JWKS(ctx).Keys { // (reloads)
		if k.Algorithm == "EdDSA" {
			t.Errorf("EdDSA key %s still published", k.KeyID)
		}
	}
	if err := m.Verify(ctx, edTok, "JWT", &out); err == nil {
		t.Fatal("an EdDSA token verifies after its key's retention")
	}
}

// Instances starting together on an empty database end up with one key
// set per algorithm and sign every algorithm with the same key.
func TestConcurrentInitConvergesPerAlgorithm(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			base := e.open(t)
			clock := newFakeClock()
			master := rotMaster(t)
			ms := initConcurrently(t, e.name, base, 4, func(st store.Store) *keys.Manager {
				m := multiManager(t, st, master, clock, jose.ES256, jose.RS256, jose.EdDSA)
				m.KidSeed = master.Derive("signing-key-ids")
				return m
			})
			active, next := byAlg(t, base, store.KeyActive), byAlg(t, base, store.KeyNext)
			for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
				if len(active[alg]) != 1 || len(next[alg]) != 1 {
					t.Errorf("%s after concurrent Init: active %v next %v", alg, active[alg], next[alg])
				}
			}
			if n := len(states(t, base)); n != 6 {
				t.Fatalf("%d keys after concurrent Init, want 6", n)
			}
			for i, m := range ms {
				for _, alg := range keys.Algorithms {
					if _, h := signAs(t, m, alg); h.KeyID != active[string(alg)][0] {
						t.Errorf("instance %d signs %s with %s, want %s", i, alg, h.KeyID, active[string(alg)][0])
					}
				}
			}
		})
	}
}
