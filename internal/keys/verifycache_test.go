package keys

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/testdb"
)

// A verified token is remembered for VerifiedTTL, and only that exact
// token string: tampered copies, other typs and unknown tokens still go
// through the full verification.
func TestVerifiedCache(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)
	var (
		mu  sync.Mutex
		now = time.Now()
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	m := &Manager{Store: st, Sealer: sealer(t, masterKey(1)), Alg: jose.ES256, Now: clock}
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	tok, err := m.Sign(ctx, "", "at+jwt", claims{Sub: "alice", N: 7})
	if err != nil {
		t.Fatal(err)
	}
	var first, second claims
	if err := m.Verify(ctx, tok, "at+jwt", &first); err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(ctx, tok, "at+jwt", &second); err != nil || second != first || second.Sub != "alice" || second.N != 7 {
		t.Fatalf("second verify: %+v, %v; want %+v", second, err, first)
	}

	// Copies that differ anywhere are verified, and refused.
	parts := strings.Split(tok, ".")
	payload, _ := json.Marshal(claims{Sub: "mallory", N: 7})
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[len(sig)-1] ^= 1
	for name, raw := range map[string]string{
		"tampered payload": parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2],
		"bad signature":    parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig),
		"trailing dot":     tok + ".",
	} {
		var out claims
		if err := m.Verify(ctx, raw, "at+jwt", &out); err == nil {
			t.Errorf("%s: accepted %+v", name, out)
		}
	}
	var other claims
	if err := m.Verify(ctx, tok, "JWT", &other); err == nil {
		t.Errorf("cached token accepted with another typ: %+v", other)
	}

	// Take the signing key out of the JWKS (retired long ago): the cached
	// token still verifies until VerifiedTTL has passed since it was
	// verified, then no longer.
	kid := m.JWKS(ctx).Keys[0].KeyID
	for _, k := range m.JWKS(ctx).Keys {
		if _, err := st.UpdateSigningKey(ctx, k.KeyID, func(r *store.SigningKey) error {
			r.State, r.RetiredAt = store.KeyRetired, now.Add(-365*24*time.Hour)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.publicKey(ctx, kid); ok {
		t.Fatal("the retired key is still published; the test needs it gone")
	}
	var cached claims
	if err := m.Verify(ctx, tok, "at+jwt", &cached); err != nil || cached.Sub != "alice" {
		t.Fatalf("within VerifiedTTL: %+v, %v", cached, err)
	}
	mu.Lock()
	now = now.Add(VerifiedTTL)
	mu.Unlock()
	var late claims
	if err := m.Verify(ctx, tok, "at+jwt", &late); err == nil {
		t.Fatalf("after VerifiedTTL the token still verified without its key: %+v", late)
	}
}

// The cache stays bounded: two generations of maxVerified entries.
func TestVerifiedCacheBounded(t *testing.T) {
	var c verifiedCache
	now := time.Now()
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`))
	p := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"x"}`))
	for i := range 3*maxVerified + 5 {
		c.put(h+"."+p+"."+base64.RawURLEncoding.EncodeToString([]byte{byte(i), byte(i >> 8), byte(i >> 16)}), "JWT", now)
	}
	if n := len(c.cur) + len(c.old); n > 2*maxVerified {
		t.Fatalf("%d entries, want at most %d", n, 2*maxVerified)
	}
}
