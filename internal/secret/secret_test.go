package secret

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// cheap keeps argon2 fast in tests that do not care about the cost.
var cheap = Argon2Params{Memory: 64, Time: 1, Threads: 1}

func TestRandom(t *testing.T) {
	for _, n := range []int{0, 1, 9, 16, 32, 64} {
		s := Random(n)
		if want := base64.RawURLEncoding.EncodedLen(n); len(s) != want {
			t.Errorf("Random(%d) has length %d, want %d", n, len(s), want)
		}
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) != n {
			t.Errorf("Random(%d) = %q is not base64url of %d bytes: %v", n, s, n, err)
		}
	}
	seen := map[string]bool{}
	for range 1000 {
		s := Random(16)
		if seen[s] {
			t.Fatalf("Random(16) repeated %q", s)
		}
		seen[s] = true
	}
	if s := NewClientSecret(); len(s) != 43 || len(s) < LongSecret {
		t.Errorf("NewClientSecret() = %q (len %d), want 43 characters (256 bits)", s, len(s))
	}
}

func TestSHA256(t *testing.T) {
	sum := sha256.Sum256([]byte("abc"))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	if got := SHA256("abc"); got != want {
		t.Fatalf("SHA256(abc) = %q, want %q", got, want)
	}
	// Known vector: SHA-256("abc") = ba7816bf...
	if want != "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0" {
		t.Fatalf("fixture drift: %q", want)
	}
}

func TestHashClientSecret(t *testing.T) {
	long := strings.Repeat("L", LongSecret)
	tests := []struct {
		name       string
		secret     string
		wantPrefix string
		wantErr    string
	}{
		{"empty", "", "", "at least 8"},
		{"7 chars", "1234567", "", "at least 8"},
		{"8 chars", "12345678", "$argon2id$v=19$m=19456,t=2,p=1$", ""},
		{"31 chars", strings.Repeat("s", 31), "$argon2id$v=19$m=19456,t=2,p=1$", ""},
		{"32 chars", long, "sha256$", ""},
		{"generated", NewClientSecret(), "sha256$", ""},
		{"1024 chars", strings.Repeat("x", MaxSecret), "sha256$", ""},
		{"1025 chars", strings.Repeat("x", MaxSecret+1), "", "at most 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := HashClientSecret(tt.secret)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v; want error containing %q", h, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(h, tt.wantPrefix) {
				t.Fatalf("hash %q does not start with %q", h, tt.wantPrefix)
			}
			if strings.Contains(h, tt.secret) {
				t.Fatalf("hash contains the secret")
			}
			if !VerifyClientSecret(h, tt.secret) {
				t.Fatal("VerifyClientSecret rejects the right secret")
			}
			if VerifyClientSecret(h, tt.secret+"x") || VerifyClientSecret(h, tt.secret[1:]) || VerifyClientSecret(h, "") {
				t.Fatal("VerifyClientSecret accepts a wrong secret")
			}
		})
	}
	// The fast path is exactly "sha256$" + base64url(SHA-256(secret)).
	sum := sha256.Sum256([]byte(long))
	h, _ := HashClientSecret(long)
	if want := "sha256$" + base64.RawURLEncoding.EncodeToString(sum[:]); h != want {
		t.Errorf("HashClientSecret(long) = %q, want %q", h, want)
	}
	// argon2 hashes are salted: the same short secret hashes differently.
	a, _ := HashClientSecret("12345678")
	b, _ := HashClientSecret("12345678")
	if a == b {
		t.Error("two argon2id hashes of one secret are equal (no salt?)")
	}
}

func TestVerifyClientSecretEdgeCases(t *testing.T) {
	long := strings.Repeat("L", 40)
	h, _ := HashClientSecret(long)
	tests := []struct {
		name, hash, secret string
		want               bool
	}{
		{"right", h, long, true},
		{"oversized", "sha256$" + SHA256(strings.Repeat("y", MaxSecret+1)), strings.Repeat("y", MaxSecret+1), false},
		{"empty hash", "", long, false},
		{"bare prefix", "sha256$", long, false},
		{"hash of other", "sha256$" + SHA256("other"), long, false},
		{"raw sha256 without prefix", SHA256(long), long, false},
		{"garbage", "$argon2id$nonsense", long, false},
	}
	for _, tt := range tests {
		if got := VerifyClientSecret(tt.hash, tt.secret); got != tt.want {
			t.Errorf("%s: VerifyClientSecret = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestHashPassword(t *testing.T) {
	h, err := HashPassword("correct horse", cheap)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(h, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != "v=19" || parts[3] != "m=64,t=1,p=1" {
		t.Fatalf("unexpected PHC string %q", h)
	}
	if salt, err := base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(salt) != 16 {
		t.Errorf("salt %q: %v (len %d)", parts[4], err, len(salt))
	}
	if key, err := base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(key) != 32 {
		t.Errorf("key %q: %v (len %d)", parts[5], err, len(key))
	}
	if !VerifyPassword(h, "correct horse") {
		t.Error("right password rejected")
	}
	for _, wrong := range []string{"", "correct horse ", "Correct horse", "correct hors"} {
		if VerifyPassword(h, wrong) {
			t.Errorf("wrong password %q accepted", wrong)
		}
	}
	if _, err := HashPassword(strings.Repeat("p", MaxSecret+1), cheap); err == nil {
		t.Error("HashPassword accepted an oversized password")
	}
	if VerifyPassword(h, strings.Repeat("p", MaxSecret+1)) {
		t.Error("VerifyPassword accepted an oversized password")
	}
	// The default parameters produce a verifiable hash too.
	hd, err := HashPassword("pw-default", DefaultArgon2)
	if err != nil || !strings.HasPrefix(hd, "$argon2id$v=19$m=19456,t=2,p=1$") || !VerifyPassword(hd, "pw-default") {
		t.Errorf("default params: %q %v", hd, err)
	}
	BurnPasswordCheck("anything") // must not panic
}

func TestMalformedAndTamperedHashes(t *testing.T) {
	good, err := HashPassword("password1", cheap)
	if err != nil {
		t.Fatal(err)
	}
	p := strings.Split(good, "$")
	salt, key := p[4], p[5]
	phc := func(v, params, s, k string) string { return fmt.Sprintf("$argon2id$%s$%s$%s$%s", v, params, s, k) }
	if !VerifyPassword(phc("v=19", "m=64,t=1,p=1", salt, key), "password1") {
		t.Fatal("fixture does not verify")
	}
	tests := []struct{ name, hash string }{
		{"empty", ""},
		{"dollars only", "$$$$$"},
		{"too few parts", "$argon2id$v=19$m=64,t=1,p=1$" + salt},
		{"too many parts", good + "$extra"},
		{"argon2i", strings.Replace(good, "argon2id", "argon2i", 1)},
		{"bcrypt", "$2a$10$abcdefghijklmnopqrstuu5Fv0yE5Sx1mCq2o3GfBz6t8QqK3Jm2W"},
		{"wrong version", phc("v=16", "m=64,t=1,p=1", salt, key)},
		{"no version", phc("", "m=64,t=1,p=1", salt, key)},
		{"absurd memory", phc("v=19", "m=4294967295,t=1,p=1", salt, key)},
		{"memory just over bound", phc("v=19", fmt.Sprintf("m=%d,t=1,p=1", 1<<20+1), salt, key)},
		{"zero memory", phc("v=19", "m=0,t=1,p=1", salt, key)},
		{"absurd time", phc("v=19", "m=64,t=4294967295,p=1", salt, key)},
		{"time just over bound", phc("v=19", "m=64,t=17,p=1", salt, key)},
		{"zero time", phc("v=19", "m=64,t=0,p=1", salt, key)},
		{"zero threads", phc("v=19", "m=64,t=1,p=0", salt, key)},
		{"threads overflow uint8", phc("v=19", "m=64,t=1,p=256", salt, key)},
		{"negative memory", phc("v=19", "m=-1,t=1,p=1", salt, key)},
		{"params garbage", phc("v=19", "memory=64", salt, key)},
		{"salt not base64", phc("v=19", "m=64,t=1,p=1", "!!!", key)},
		{"key not base64", phc("v=19", "m=64,t=1,p=1", salt, "***")},
		{"empty key", phc("v=19", "m=64,t=1,p=1", salt, "")},
		{"huge key", phc("v=19", "m=64,t=1,p=1", salt, base64.RawStdEncoding.EncodeToString(make([]byte, 65)))},
		{"padded key", phc("v=19", "m=64,t=1,p=1", salt, key+"=")},
		{"tampered key", phc("v=19", "m=64,t=1,p=1", salt, flipFirst(key))},
		{"tampered salt", phc("v=19", "m=64,t=1,p=1", flipFirst(salt), key)},
		{"other params", phc("v=19", "m=128,t=1,p=1", salt, key)},
		{"sha256 form", "sha256$" + SHA256("password1")}, // never a password hash
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if VerifyPassword(tt.hash, "password1") {
				t.Fatalf("VerifyPassword accepted %q", tt.hash)
			}
		})
	}
}

// flipFirst changes the first base64 character to a different valid one.
func flipFirst(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

// Password hashes run at most len(hashSlots) at a time, however many
// requests ask at once: each holds its argon2 memory until it ends.
func TestHashingBounded(t *testing.T) {
	saved := hashSlots
	hashSlots = make(chan struct{}, 1)
	defer func() { hashSlots = saved }()
	maxHashing.Store(0)

	p := Argon2Params{Memory: 1024, Time: 1, Threads: 1} // ~1 ms each
	h, err := HashPassword("correct horse", p)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 * max(2, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for range 5 {
				if !VerifyPassword(h, "correct horse") {
					t.Error("the right password was refused")
				}
			}
		})
	}
	wg.Wait()
	if got := maxHashing.Load(); got != 1 {
		t.Errorf("%d hashes ran at once with one slot, want 1", got)
	}
	if n := hashing.Load(); n != 0 {
		t.Errorf("%d hashes still counted as running", n)
	}
}
