package secret

import (
	"syscall"
	"testing"
	"time"
)

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
			cpu0 := cpuTime()
			for b.Loop() {
				if !VerifyClientSecret(hash, c.secret) {
					b.Fatal("secret refused")
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
