package token

import "testing"

// Benchmarks of the refresh-token codec: one Parse and one Mint run on every
// refresh grant. Run with
//
//	go test -run '^$' -bench . -benchmem ./internal/token
//
// (go test without -bench only compiles them).

func BenchmarkRefreshMint(b *testing.B) {
	c := NewRefreshCodec(testKey)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := c.Mint(testFID, int64(i+1)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRefreshParse(b *testing.B) {
	c := NewRefreshCodec(testKey)
	tok := mustMint(b, c, testFID, 42)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.Parse(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefreshParseForged is the cost of refusing a token whose MAC does
// not verify (the same work as a valid one: the MAC is always computed).
func BenchmarkRefreshParseForged(b *testing.B) {
	tok := mustMint(b, NewRefreshCodec(otherKey), testFID, 42)
	c := NewRefreshCodec(testKey)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.Parse(tok); err == nil {
			b.Fatal("forged token accepted")
		}
	}
}
