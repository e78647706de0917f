package secret

import "testing"

// Client authentication runs on every token request. A generated client
// secret (>= LongSecret characters) is checked against a SHA-256 hash; a
// short operator-chosen one against argon2id with the production
// parameters. Run with
//
//	go test -run '^$' -bench . -benchmem ./internal/secret

func BenchmarkVerifyClientSecret(b *testing.B) {
	long := NewClientSecret()
	for _, c := range []struct{ name, secret string }{
		{"sha256", long},
		{"argon2id", "short-pw"},
	} {
		hash, err := HashClientSecret(c.secret)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !VerifyClientSecret(hash, c.secret) {
					b.Fatal("secret refused")
				}
			}
		})
	}
}
