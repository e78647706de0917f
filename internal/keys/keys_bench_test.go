package keys_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/testdb"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// Signing runs twice on every refresh grant that includes openid (an access
// token and an ID token). Run with
//
//	go test -run '^$' -bench . -benchmem ./internal/keys

func newManager(b *testing.B, alg jose.SignatureAlgorithm, more ...jose.SignatureAlgorithm) *keys.Manager {
	b.Helper()
	master := make(keys.MasterKey, 32)
	_, _ = rand.Read(master)
	sealer, err := keys.NewSealer(master, "signing-keys")
	if err != nil {
		b.Fatal(err)
	}
	m := &keys.Manager{Store: testdb.SQLite(b), Sealer: sealer, Alg: alg, Algs: more, Now: time.Now}
	if err := m.Init(context.Background()); err != nil {
		b.Fatal(err)
	}
	return m
}

// benchClaims is a typical access token of a refresh grant.
func benchClaims() token.AccessClaims {
	now := time.Now()
	return token.AccessClaims{
		Issuer: "http://127.0.0.1:8080", Subject: "6f1c2d4e-9a0b-4c3d-8e7f-0a1b2c3d4e5f", Audience: []string{"bench"},
		IssuedAt: now.Unix(), Expiry: now.Add(10 * time.Minute).Unix(), ID: "Ia3b4c5d6e7f8g9h0i1j2k",
		ClientID: "bench", Scope: "openid offline_access", AuthTime: now.Unix(), ACR: "urn:latchkey:acr:password",
		AMR: []string{"pwd"}, FamilyID: "AAECAwQFBgcICQoLDA0ODw",
	}
}

// BenchmarkSign signs with a manager of one algorithm (the default, "":
// access tokens) and, under "of3", with the key of each algorithm of a
// manager keeping all three (an ID token in a client's own algorithm): the
// per-algorithm lookup should cost nothing measurable.
func BenchmarkSign(b *testing.B) {
	bench := func(b *testing.B, m *keys.Manager, alg jose.SignatureAlgorithm) {
		ctx := context.Background()
		claims := benchClaims()
		b.ReportAllocs()
		cpu0 := cpuTime()
		for b.Loop() {
			if _, err := m.Sign(ctx, alg, token.TypeAccess, claims); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu0)
	}
	for _, alg := range keys.Algorithms {
		b.Run(string(alg), func(b *testing.B) { bench(b, newManager(b, alg), "") })
	}
	for _, alg := range keys.Algorithms {
		b.Run("of3/"+string(alg), func(b *testing.B) { bench(b, newManager(b, jose.ES256, keys.Algorithms...), alg) })
	}
}

// BenchmarkRawSign is the signature alone (crypto/rsa, crypto/ecdsa,
// crypto/ed25519 over a SHA-256 digest or the message), without go-jose's
// JSON and base64: BenchmarkSign minus this is the JWT building.
func BenchmarkRawSign(b *testing.B) {
	msg := []byte("eyJhbGciOiJFUzI1NiIsImtpZCI6IngiLCJ0eXAiOiJhdCtqd3QifQ.eyJpc3MiOiJodHRwOi8vMTI3LjAuMC4xOjgwODAiLCJzdWIiOiI2ZjFjMmQ0ZSJ9")
	digest := sha256.Sum256(msg)
	for _, alg := range keys.Algorithms {
		b.Run(string(alg), func(b *testing.B) {
			k, err := keys.Generate(alg)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				switch k := k.(type) {
				case *rsa.PrivateKey:
					_, err = rsa.SignPKCS1v15(nil, k, crypto.SHA256, digest[:])
				case *ecdsa.PrivateKey:
					_, err = ecdsa.SignASN1(rand.Reader, k, digest[:])
				case ed25519.PrivateKey:
					_ = ed25519.Sign(k, msg)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu0)
		})
	}
}

// BenchmarkVerify is the signature check of introspection and userinfo.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range keys.Algorithms {
		b.Run(string(alg), func(b *testing.B) {
			m := newManager(b, alg)
			ctx := context.Background()
			raw, err := m.Sign(ctx, "", token.TypeAccess, benchClaims())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				var c token.AccessClaims
				if err := m.Verify(ctx, raw, token.TypeAccess, &c); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu0)
		})
	}
}

// reportCPU adds the process's CPU time per operation (user + system, all
// goroutines, from getrusage) to the benchmark's output as cpu-ns/op. On a
// shared machine it is steadier than ns/op, which also counts the time the
// benchmark waited for a core; call it after the timed loop.
func reportCPU(b *testing.B, start time.Duration) {
	if b.N > 0 {
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
