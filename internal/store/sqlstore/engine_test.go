package sqlstore_test

// Engine-level checks the conformance suite cannot make through the
// store.Store interface: connection settings, migrating a fresh database
// from several handles and processes at once, and several processes
// writing to one SQLite file.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/store/sqlstore"
	"github.com/latchkey-dev/latchkey/internal/testdb"
)

func TestSQLiteSettings(t *testing.T) {
	s := testdb.SQLite(t)
	db := s.DB()
	// One connection, so every PRAGMA reads the same connection's settings
	// (each connection applies them when opened).
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, tc := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"busy_timeout", "10000"},
		{"foreign_keys", "1"},
		{"synchronous", "1"},        // NORMAL
		{"wal_autocheckpoint", "0"}, // the store checkpoints (checkpoint.go)
	} {
		var got string
		if err := conn.QueryRowContext(t.Context(), "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tc.pragma, err)
		}
		if got != tc.want {
			t.Errorf("PRAGMA %s = %q, want %q", tc.pragma, got, tc.want)
		}
	}
	if s.Engine() != "sqlite" || db.Stats().MaxOpenConnections != 8 {
		t.Errorf("engine %q with %d connections, want sqlite with 8", s.Engine(), db.Stats().MaxOpenConnections)
	}
}

// TestMigrateConcurrent migrates a fresh database from several handles at
// once, as several server processes starting together would.
func TestMigrateConcurrent(t *testing.T) {
	for _, tc := range []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"SQLite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "fresh.db") }},
		{"Postgres", func(t *testing.T) string { return testdb.PostgresEmptyDSN(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := tc.dsn(t)
			const handles = 6
			stores := make([]*sqlstore.Store, handles)
			for i := range stores {
				s, err := sqlstore.Open(t.Context(), dsn)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				stores[i] = s
			}
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make([]error, handles)
			for i, s := range stores {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					errs[i] = s.Migrate(t.Context())
				}()
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("migrator %d: %v", i, err)
				}
			}
			if err := stores[0].Migrate(t.Context()); err != nil {
				t.Fatalf("migrate again: %v", err)
			}
			var versions, applied int
			err := stores[0].DB().QueryRowContext(t.Context(),
				"SELECT COUNT(*), COUNT(DISTINCT version) FROM schema_migrations").Scan(&applied, &versions)
			if err != nil {
				t.Fatal(err)
			}
			if applied != versions || versions < 1 {
				t.Fatalf("schema_migrations: %d rows for %d versions", applied, versions)
			}
			if _, err := stores[1].ListClients(t.Context()); err != nil {
				t.Fatalf("schema unusable after concurrent migration: %v", err)
			}
		})
	}
}

// Environment of TestSQLiteMultiProcess's child processes.
const (
	childPathEnv   = "LATCHKEY_SQLSTORE_CHILD_DB"
	childFamilyEnv = "LATCHKEY_SQLSTORE_CHILD_FAMILY"
)

// TestSQLiteMultiProcess has several processes migrate one fresh SQLite file
// at once and then rotate one family and append audit events as fast as
// they can, as a CLI next to a running server would: no process may see
// SQLITE_BUSY or any other error, and the compare-and-swap must count every
// rotation exactly once.
func TestSQLiteMultiProcess(t *testing.T) {
	if path := os.Getenv(childPathEnv); path != "" {
		if err := childWork(path, os.Getenv(childFamilyEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		return
	}
	if testing.Short() {
		t.Skip("starts processes")
	}
	path := filepath.Join(t.TempDir(), "shared.db")
	family := "fam-multiprocess"

	const procs = 4
	type result struct {
		out []byte
		err error
	}
	results := make([]result, procs)
	var wg sync.WaitGroup
	for i := 0; i < procs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestSQLiteMultiProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), childPathEnv+"="+path, childFamilyEnv+"="+family)
			out, err := cmd.CombinedOutput()
			results[i] = result{out, err}
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("process %d: %v\n%s", i, r.err, r.out)
		}
	}

	s, err := sqlstore.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, err := s.GetFamily(t.Context(), family)
	if err != nil {
		t.Fatal(err)
	}
	events, err := s.ListAudit(t.Context(), store.AuditFilter{FamilyID: family, Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	// Every successful rotation appended one event, so the generation
	// counts them exactly when the compare-and-swap held.
	if int64(len(events)) != f.Generation || f.Generation < procs {
		t.Fatalf("generation %d after %d recorded rotations", f.Generation, len(events))
	}
	t.Logf("%d processes made %d rotations", procs, f.Generation)
}

// childWork is one process of TestSQLiteMultiProcess: migrate, create the
// family unless another process did, then for a while read the generation
// and try to rotate from it, recording each win.
func childWork(path, family string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := sqlstore.Open(ctx, path)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		return err
	}
	now := time.Now()
	err = s.CreateFamily(ctx, &store.Family{ID: family, ClientID: "c", UserID: "u", Offline: true, CreatedAt: now})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	pid := strconv.Itoa(os.Getpid())
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		f, err := s.GetFamily(ctx, family)
		if err != nil {
			return err
		}
		err = s.RotateFamily(ctx, family, f.Generation, time.Now(), time.Now().Add(time.Hour))
		switch {
		case errors.Is(err, store.ErrConflict):
			continue
		case err != nil:
			return err
		}
		err = s.AppendAudit(ctx, &store.AuditEvent{Time: time.Now(), Type: "refresh.rotated", FamilyID: family,
			Detail: pid + " from " + strconv.FormatInt(f.Generation, 10)})
		if err != nil {
			return err
		}
	}
	return nil
}

// atVersion runs fn on a new database of each engine migrated up to
// version only, as an older binary left it; fn migrates the rest.
func atVersion(t *testing.T, version int64, fn func(t *testing.T, s *sqlstore.Store)) {
	for _, tc := range []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"SQLite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "old.db") }},
		{"Postgres", func(t *testing.T) string { return testdb.PostgresEmptyDSN(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := sqlstore.Open(t.Context(), tc.dsn(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if err := s.MigrateTo(t.Context(), version); err != nil {
				t.Fatal(err)
			}
			fn(t, s)
		})
	}
}

// TestMigrateClientIDTokenAlg upgrades a database holding a client from
// before migration 0005 (per-client ID token algorithm): the client keeps
// every setting, has no algorithm of its own (the server's signing_alg),
// and can be given one.
func TestMigrateClientIDTokenAlg(t *testing.T) {
	atVersion(t, 4, func(t *testing.T, s *sqlstore.Store) {
		ctx := t.Context()
		var err error
		// A client row as version 4 stored it.
		_, err = s.DB().ExecContext(ctx, `INSERT INTO clients (id, name, secret_hash, is_public, redirect_uris,
				grant_types, scopes, refresh_idle_ms, refresh_absolute_ms, reuse_report_only, require_mfa,
				policy_version, created_at, updated_at, require_dpop, jwks)
				VALUES ('legacy', 'Legacy App', 'sha256$abc', FALSE, '["https://app.example/cb"]',
				'authorization_code refresh_token', 'openid offline_access', 0, 86400000, FALSE, TRUE,
				2, 1700000000000, 1700000000000, TRUE, '')`)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		c, err := s.GetClient(ctx, "legacy")
		if err != nil {
			t.Fatal(err)
		}
		if c.IDTokenAlg != "" || c.Name != "Legacy App" || !c.RequireMFA || !c.RequireDPoP || c.PolicyVersion != 2 ||
			c.RefreshAbsolute != 24*time.Hour || len(c.RedirectURIs) != 1 || len(c.Scopes) != 2 {
			t.Fatalf("client after migration: %+v", c)
		}
		if _, err := s.UpdateClient(ctx, "legacy", func(c *store.Client) error { c.IDTokenAlg = "RS256"; return nil }); err != nil {
			t.Fatal(err)
		}
		if c, err = s.GetClient(ctx, "legacy"); err != nil || c.IDTokenAlg != "RS256" {
			t.Fatalf("after setting the algorithm: %+v %v", c, err)
		}
	})
}

// TestMigrateIdleSweep upgrades a database holding families from before
// migration 0006 (the sweep's own idle_sweep_at): an idle-expired family
// is still swept, a live one is kept and can still be refreshed.
func TestMigrateIdleSweep(t *testing.T) {
	atVersion(t, 5, func(t *testing.T, s *sqlstore.Store) {
		ctx := t.Context()
		var err error
		now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		msAt := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
		// Two families as version 5 stored them: one idle since long
		// before keepDead, one in use.
		for _, f := range []struct {
			id      string
			idleExp int64
		}{{"idle", msAt(-30 * 24 * time.Hour)}, {"live", msAt(time.Hour)}} {
			_, err = s.DB().ExecContext(ctx, sqlstore.Rebind(s, `INSERT INTO families (id, client_id, user_id, scopes,
					offline, generation, rotated_at, auth_time, amr, acr, policy_version, credential_epoch, dpop_jkt,
					created_at, last_used_at, idle_expires_at, absolute_expires_at, revoked_at, revoke_reason)
					VALUES (?, 'c', 'u', 'openid offline_access', TRUE, 1, ?, ?, 'pwd', '', 0, 0, '', ?, ?, ?, ?, 0, '')`),
				f.id, msAt(-40*24*time.Hour), msAt(-40*24*time.Hour), msAt(-40*24*time.Hour), msAt(-40*24*time.Hour),
				f.idleExp, msAt(90*24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		// A family written by an older binary after the migration (no
		// idle_sweep_at: the column's default, 0), idle long ago.
		_, err = s.DB().ExecContext(ctx, sqlstore.Rebind(s, `INSERT INTO families (id, client_id, user_id, scopes,
				offline, generation, rotated_at, auth_time, amr, acr, policy_version, credential_epoch, dpop_jkt,
				created_at, last_used_at, idle_expires_at, absolute_expires_at, revoked_at, revoke_reason)
				VALUES ('old-binary', 'c', 'u', 'openid offline_access', TRUE, 1, ?, ?, 'pwd', '', 0, 0, '', ?, ?, ?, ?, 0, '')`),
			msAt(-40*24*time.Hour), msAt(-40*24*time.Hour), msAt(-40*24*time.Hour), msAt(-40*24*time.Hour),
			msAt(-30*24*time.Hour), msAt(90*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for {
			n, err := s.Sweep(ctx, now, 7*24*time.Hour, 10)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		for _, id := range []string{"idle", "old-binary"} {
			if _, err := s.GetFamily(ctx, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("family %q after migrating and sweeping: %v, want it swept", id, err)
			}
		}
		if err := s.RotateFamily(ctx, "live", 1, now, now.Add(time.Hour)); err != nil {
			t.Errorf("refreshing the live family after migrating: %v", err)
		}
	})
}

// The sweep moves the idle_sweep_at of a family it finds still in use up
// to the family's idle expiry, so that it does not look at the family
// again at every sweep until then (rotations leave idle_sweep_at alone).
func TestSweepReschedulesIdleFamilies(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := t.Context()
			s := e.open(t)
			now := time.Date(2002, 3, 1, 0, 0, 0, 0, time.UTC)
			f := &store.Family{ID: "resched-" + e.name, ClientID: "c", UserID: "u", Scopes: []string{"openid", "offline_access"},
				Offline: true, Generation: 1, RotatedAt: now.Add(-60 * 24 * time.Hour), AuthTime: now.Add(-60 * 24 * time.Hour),
				AMR: []string{"pwd"}, CreatedAt: now.Add(-60 * 24 * time.Hour), LastUsedAt: now.Add(-60 * 24 * time.Hour),
				IdleExpiresAt: now.Add(-30 * 24 * time.Hour), AbsoluteExpiresAt: now.Add(90 * 24 * time.Hour)}
			if err := s.CreateFamily(ctx, f); err != nil {
				t.Fatal(err)
			}
			next := now.Add(time.Hour)
			if err := s.RotateFamily(ctx, f.ID, 1, now, next); err != nil {
				t.Fatal(err)
			}
			sweepAt := func() int64 {
				t.Helper()
				var v int64
				if err := s.DB().QueryRowContext(ctx, sqlstore.Rebind(s, `SELECT idle_sweep_at FROM families WHERE id = ?`), f.ID).Scan(&v); err != nil {
					t.Fatal(err)
				}
				return v
			}
			if got, want := sweepAt(), f.IdleExpiresAt.UnixMilli(); got != want {
				t.Fatalf("idle_sweep_at after the rotation %d, want the first idle expiry %d (rotations leave it alone)", got, want)
			}
			if _, err := s.Sweep(ctx, now, 7*24*time.Hour, 10); err != nil {
				t.Fatal(err)
			}
			if got, want := sweepAt(), next.UnixMilli(); got != want {
				t.Errorf("idle_sweep_at after the sweep %d, want the idle expiry %d", got, want)
			}
		})
	}
}
