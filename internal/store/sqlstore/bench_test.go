package sqlstore_test

// Benchmarks of the store calls one refresh grant makes, on both engines:
// GetClient (client authentication), GetFamily, GetUser, the RotateFamily
// compare-and-swap and AppendAudit (the rotation's audit event). Run with
//
//	go test -run '^$' -bench . -benchmem ./internal/store/sqlstore
//
// PostgreSQL is reached as in the tests (LATCHKEY_TEST_POSTGRES, default
// 127.0.0.1:5432); the benchmark turns synchronous_commit back on, so a
// write costs what it costs in production (testdb turns it off for speed).

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/testdb"
)

// benchStores returns each engine's store, opened as the server opens it.
func benchStores(b *testing.B) map[string]func(b *testing.B) store.Store {
	return map[string]func(b *testing.B) store.Store{
		"sqlite":   func(b *testing.B) store.Store { return testdb.SQLite(b) },
		"postgres": func(b *testing.B) store.Store { return testdb.DurablePostgres(b) },
	}
}

func forEachEngine(b *testing.B, fn func(b *testing.B, st store.Store)) {
	for _, name := range []string{"sqlite", "postgres"} {
		open := benchStores(b)[name]
		b.Run(name, func(b *testing.B) { fn(b, open(b)) })
	}
}

// seedRefresh creates what a refresh touches: a client, a user and a family.
func seedRefresh(b *testing.B, st store.Store) *store.Family {
	b.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	c := &store.Client{
		ID: "bench", Name: "Bench", SecretHash: "sha256$47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
		RedirectURIs: []string{"http://localhost:9999/callback"}, GrantTypes: []string{"authorization_code", "refresh_token"},
		Scopes: []string{"openid", "profile", "email", "offline_access"}, PolicyVersion: 1, CreatedAt: now, UpdatedAt: now,
	}
	if err := st.CreateClient(ctx, c); err != nil {
		b.Fatal(err)
	}
	u := &store.User{ID: "6f1c2d4e-9a0b-4c3d-8e7f-0a1b2c3d4e5f", Username: "bench", PasswordHash: "x", Name: "Bench User", CreatedAt: now, UpdatedAt: now}
	if err := st.CreateUser(ctx, u); err != nil {
		b.Fatal(err)
	}
	f := &store.Family{
		ID: "AAECAwQFBgcICQoLDA0ODw", ClientID: c.ID, UserID: u.ID, Scopes: []string{"openid", "offline_access"}, Offline: true,
		Generation: 1, RotatedAt: now, AuthTime: now, AMR: []string{"pwd"}, ACR: "urn:latchkey:acr:password", PolicyVersion: 1,
		CreatedAt: now, LastUsedAt: now, IdleExpiresAt: now.Add(30 * 24 * time.Hour), AbsoluteExpiresAt: now.Add(90 * 24 * time.Hour),
	}
	if err := st.CreateFamily(ctx, f); err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkRotateFamily is the compare-and-swap UPDATE of one rotation: a
// write transaction (autocommit) on each engine.
func BenchmarkRotateFamily(b *testing.B) {
	forEachEngine(b, func(b *testing.B, st store.Store) {
		f := seedRefresh(b, st)
		ctx := context.Background()
		gen := f.Generation
		b.ReportAllocs()
		cpu0 := cpuTime()
		for b.Loop() {
			now := time.Now().UTC().Truncate(time.Millisecond)
			if err := st.RotateFamily(ctx, f.ID, gen, now, now.Add(30*24*time.Hour)); err != nil {
				b.Fatal(err)
			}
			gen++
		}
		reportCPU(b, cpu0)
	})
}

// BenchmarkAppendAudit is the audit event every rotation writes.
func BenchmarkAppendAudit(b *testing.B) {
	forEachEngine(b, func(b *testing.B, st store.Store) {
		f := seedRefresh(b, st)
		ctx := context.Background()
		b.ReportAllocs()
		cpu0 := cpuTime()
		for b.Loop() {
			ev := &store.AuditEvent{Time: time.Now().UTC().Truncate(time.Millisecond), Type: "refresh.rotated", UserID: f.UserID, ClientID: f.ClientID, FamilyID: f.ID}
			if err := st.AppendAudit(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu0)
	})
}

// BenchmarkRefreshReads are the reads of one refresh: the client (client
// authentication; after the first read it comes from the client cache),
// and the family with its user (GetFamilyWithUser, one query; GetFamily
// and GetUser are the two reads it replaced).
func BenchmarkRefreshReads(b *testing.B) {
	forEachEngine(b, func(b *testing.B, st store.Store) {
		f := seedRefresh(b, st)
		ctx := context.Background()
		b.Run("GetClient", func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := st.GetClient(ctx, f.ClientID); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu0)
		})
		b.Run("GetFamily", func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := st.GetFamily(ctx, f.ID); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu0)
		})
		b.Run("GetFamilyWithUser", func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if _, _, err := st.GetFamilyWithUser(ctx, f.ID); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu0)
		})
		b.Run("GetUser", func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := st.GetUser(ctx, f.UserID); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu0)
		})
	})
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
