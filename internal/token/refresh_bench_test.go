package token

import (
	"syscall"
	"testing"
	"time"
)

// Benchmarks of the refresh-token codec: one Parse and one Mint run on every
// refresh grant. Run with
//
//	go test -run '^$' -bench . -benchmem ./internal/token
//
// (go test without -bench only compiles them).

func BenchmarkRefreshMint(b *testing.B) {
	c := NewRefreshCodec(testKey)
	b.ReportAllocs()
	cpu0 := cpuTime()
	for i := 0; b.Loop(); i++ {
		if _, err := c.Mint(testFID, int64(i+1)); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu0)
}

func BenchmarkRefreshParse(b *testing.B) {
	c := NewRefreshCodec(testKey)
	tok := mustMint(b, c, testFID, 42)
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		if _, _, err := c.Parse(tok); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu0)
}

// BenchmarkRefreshParseForged is the cost of refusing a token whose MAC does
// not verify (the same work as a valid one: the MAC is always computed).
func BenchmarkRefreshParseForged(b *testing.B) {
	tok := mustMint(b, NewRefreshCodec(otherKey), testFID, 42)
	c := NewRefreshCodec(testKey)
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		if _, _, err := c.Parse(tok); err == nil {
			b.Fatal("forged token accepted")
		}
	}
	reportCPU(b, cpu0)
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
