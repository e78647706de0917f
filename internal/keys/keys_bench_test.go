package keys_test

import (
	"context"
	"crypto/rand"
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

func newManager(b *testing.B, alg jose.SignatureAlgorithm) *keys.Manager {
	b.Helper()
	master := make(keys.MasterKey, 32)
	_, _ = rand.Read(master)
	sealer, err := keys.NewSealer(master, "signing-keys")
	if err != nil {
		b.Fatal(err)
	}
	m := &keys.Manager{Store: testdb.SQLite(b), Sealer: sealer, Alg: alg, Now: time.Now}
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

func BenchmarkSign(b *testing.B) {
	for _, alg := range keys.Algorithms {
		b.Run(string(alg), func(b *testing.B) {
			m := newManager(b, alg)
			ctx := context.Background()
			claims := benchClaims()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Sign(ctx, token.TypeAccess, claims); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify is the signature check of introspection and userinfo.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range keys.Algorithms {
		b.Run(string(alg), func(b *testing.B) {
			m := newManager(b, alg)
			ctx := context.Background()
			raw, err := m.Sign(ctx, token.TypeAccess, benchClaims())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				var c token.AccessClaims
				if err := m.Verify(ctx, raw, token.TypeAccess, &c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
