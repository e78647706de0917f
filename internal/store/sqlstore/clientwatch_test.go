package sqlstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/testdb"
)

// TestWatchClients (PostgreSQL): with WatchClients, another handle's client
// writes (another instance, or the CLI) reach this handle's cache at once,
// not after the TTL, which is set to an hour here so that only a
// notification can explain a fresh read. After the listening connection
// is killed the watcher reconnects and notifications work again.
func TestWatchClients(t *testing.T) {
	ctx := t.Context()
	s1 := testdb.Postgres(t)
	s1.SetClientCacheTTL(time.Hour)
	s2, err := s1.Reopen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	s1.WatchClients(ctx, nil)
	waitFor(t, "the watcher to listen", s1.WatchingClients)

	c := cacheTestClient("v1")
	if err := s2.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	name := func() string {
		t.Helper()
		got, err := s1.GetClient(ctx, c.ID)
		if err != nil {
			return "error: " + err.Error()
		}
		return got.Name
	}
	if n := name(); n != "v1" {
		t.Fatalf("name %q, want v1", n)
	}
	rename := func(to string) {
		t.Helper()
		if _, err := s2.UpdateClient(ctx, c.ID, func(c *store.Client) error { c.Name = to; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	rename("v2")
	waitFor(t, "the rename to reach the cache", func() bool { return name() == "v2" })

	// Kill the listening connection: the watcher drops the cache, comes
	// back, and the next write is seen again.
	var killed int
	if err := s1.DB().QueryRowContext(ctx,
		`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		  WHERE application_name = 'latchkey-client-watch' AND pid <> pg_backend_pid()
		    AND query LIKE 'LISTEN%' AND datname = current_database()`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("no listening connection found in pg_stat_activity")
	}
	waitFor(t, "the watcher to notice", func() bool { return !s1.WatchingClients() })
	waitFor(t, "the watcher to listen again", s1.WatchingClients)
	if n := name(); n != "v2" { // cached again
		t.Fatalf("name %q, want v2", n)
	}
	rename("v3")
	waitFor(t, "a rename after the reconnect to reach the cache", func() bool { return name() == "v3" })

	if err := s2.DeleteClient(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deletion to reach the cache", func() bool {
		_, err := s1.GetClient(ctx, c.ID)
		return errors.Is(err, store.ErrNotFound)
	})

	// Close stops the watcher (and must not hang).
	done := make(chan struct{})
	go func() { s1.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return with a watcher running")
	}
	if s1.WatchingClients() {
		t.Error("still listening after Close")
	}
}

// On SQLite WatchClients does nothing (and does not fail).
func TestWatchClientsSQLite(t *testing.T) {
	s := testdb.SQLite(t)
	s.WatchClients(t.Context(), nil)
	time.Sleep(50 * time.Millisecond)
	if s.WatchingClients() {
		t.Fatal("a SQLite store reports a listening connection")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
