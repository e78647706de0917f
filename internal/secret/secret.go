// Package secret generates random values and hashes the secrets Latchkey
// must verify but never store: client secrets and user passwords.
//
// Client secrets that Latchkey generates carry 256 bits of entropy, so a
// slow password KDF would only add latency to every token request: they are
// stored as SHA-256. Operator-chosen secrets shorter than LongSecret may be
// low-entropy, so they get argon2id like passwords. Either way the check is
// constant-time.
package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
)

const (
	// MinClientSecret is the shortest client secret an operator may choose.
	MinClientSecret = 8
	// LongSecret is the length from which a client secret is assumed to be
	// high-entropy and stored as a fast SHA-256 hash.
	LongSecret = 32
	// MaxSecret bounds every secret and password we hash.
	MaxSecret = 1024
)

var b64 = base64.RawURLEncoding

// Random returns n random bytes, base64url-encoded without padding.
func Random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b64.EncodeToString(b)
}

// SHA256 returns the base64url SHA-256 of s: the at-rest form of session ids
// and authorization codes.
func SHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return b64.EncodeToString(sum[:])
}

// NewClientSecret returns a generated 256-bit client secret.
func NewClientSecret() string { return Random(32) }

// HashClientSecret returns the stored form of a client secret.
func HashClientSecret(s string) (string, error) {
	switch {
	case len(s) < MinClientSecret:
		return "", fmt.Errorf("client secret must be at least %d characters", MinClientSecret)
	case len(s) > MaxSecret:
		return "", fmt.Errorf("client secret must be at most %d characters", MaxSecret)
	case len(s) >= LongSecret:
		return "sha256$" + SHA256(s), nil
	default:
		return HashPassword(s, DefaultArgon2)
	}
}

// VerifyClientSecret checks s against a HashClientSecret result in
// constant time.
func VerifyClientSecret(hash, s string) bool {
	if len(s) > MaxSecret {
		return false
	}
	if h, ok := strings.CutPrefix(hash, "sha256$"); ok {
		return subtle.ConstantTimeCompare([]byte(h), []byte(SHA256(s))) == 1
	}
	return VerifyPassword(hash, s)
}

// Argon2Params are argon2id cost parameters.
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// DefaultArgon2 follows OWASP's argon2id recommendation (19 MiB, t=2, p=1).
var DefaultArgon2 = Argon2Params{Memory: 19 * 1024, Time: 2, Threads: 1}

// HashPassword returns a PHC-format argon2id hash.
func HashPassword(pw string, p Argon2Params) (string, error) {
	if len(pw) > MaxSecret {
		return "", fmt.Errorf("password must be at most %d characters", MaxSecret)
	}
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	key := idKey([]byte(pw), salt, p, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

var errBadHash = errors.New("secret: malformed hash")

func parsePHC(hash string) (p Argon2Params, salt, key []byte, err error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, errBadHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, errBadHash
	}
	// Refuse absurd costs from a tampered row rather than exhaust memory.
	if p.Memory == 0 || p.Memory > 256<<10 || p.Time == 0 || p.Time > 10 || p.Threads == 0 || p.Threads > 16 {
		return p, nil, nil, errBadHash
	}
	if salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil {
		return p, nil, nil, errBadHash
	}
	if key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(key) == 0 || len(key) > 64 {
		return p, nil, nil, errBadHash
	}
	return p, salt, key, nil
}

// VerifyPassword checks pw against a HashPassword result in constant time.
func VerifyPassword(hash, pw string) bool {
	if len(pw) > MaxSecret {
		return false
	}
	p, salt, key, err := parsePHC(hash)
	if err != nil {
		return false
	}
	got := idKey([]byte(pw), salt, p, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1
}

// hashSlots bounds the argon2id computations that run at once to the
// number of cores (GOMAXPROCS when the process starts). Each one keeps a
// core busy and holds its memory (19 MiB with DefaultArgon2) until it
// ends; Go's scheduler would otherwise run every check of a burst at once,
// interleaved: 32 concurrent checks held ~0.6 GB and finished later, not
// sooner (docs/BENCHMARKS.md, session 5). The others wait their turn.
var hashSlots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))

// hashing counts the computations running and the most seen at once (for
// tests).
var hashing, maxHashing atomic.Int64

// idKey is argon2.IDKey in one of the hashSlots.
func idKey(pw, salt []byte, p Argon2Params, keyLen uint32) []byte {
	slots := hashSlots
	slots <- struct{}{}
	defer func() { <-slots }()
	n := hashing.Add(1)
	defer hashing.Add(-1)
	for m := maxHashing.Load(); n > m && !maxHashing.CompareAndSwap(m, n); m = maxHashing.Load() {
	}
	return argon2.IDKey(pw, salt, p.Time, p.Memory, p.Threads, keyLen)
}

// dummyHash is verified against when a username does not exist, so that a
// failed sign-in takes as long for unknown users as for known ones.
var dummyHash, _ = HashPassword("latchkey-dummy-password", DefaultArgon2)

// BurnPasswordCheck spends the time of one password verification.
func BurnPasswordCheck(pw string) { VerifyPassword(dummyHash, pw) }

// BurnClientSecretCheck spends the time of one VerifyClientSecret for a
// secret of this length: SHA-256 for long secrets, argon2id for short ones.
func BurnClientSecretCheck(s string) {
	if len(s) >= LongSecret {
		VerifyClientSecret("sha256$"+SHA256("latchkey-dummy"), s)
		return
	}
	BurnPasswordCheck(s)
}
