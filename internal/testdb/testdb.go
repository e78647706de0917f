// Package testdb gives tests a migrated, private database on either engine.
//
// SQLite databases are files in t.TempDir(). PostgreSQL databases are fresh
// schemas (t_<random>) in the database named by the environment variable
// LATCHKEY_TEST_POSTGRES (default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable), dropped when the
// test ends. An unreachable PostgreSQL fails the test: CI must never pass by
// skipping. Developers without PostgreSQL set LATCHKEY_TEST_POSTGRES=off to
// skip those tests instead.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/latchkey-dev/latchkey/internal/store/sqlstore"
)

// EnvPostgres names the environment variable holding the PostgreSQL DSN, or
// "off" to skip PostgreSQL tests.
const EnvPostgres = "LATCHKEY_TEST_POSTGRES"

// DefaultPostgres is the DSN used when EnvPostgres is unset.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// setupTimeout bounds connecting, creating and migrating a test database.
const setupTimeout = 30 * time.Second

// SQLite returns a migrated store on a new file in t.TempDir(), closed when
// the test ends.
func SQLite(t testing.TB) *sqlstore.Store {
	t.Helper()
	return openMigrated(t, filepath.Join(t.TempDir(), "latchkey.db"))
}

// SQLitePath returns the path of a new, migrated SQLite database in
// t.TempDir(), for tests that open it themselves (several server processes
// on one file, a CLI next to a server). Pass it to sqlstore.Open as is.
func SQLitePath(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "latchkey.db")
	migrate(t, path)
	return path
}

// Postgres returns a migrated store in a fresh schema of its own, closed
// (before the schema is dropped) when the test ends.
func Postgres(t testing.TB) *sqlstore.Store {
	t.Helper()
	return openMigrated(t, PostgresEmptyDSN(t))
}

// DurablePostgres is Postgres with synchronous_commit back on, as in
// production (the test DSN turns it off for speed): for benchmarks whose
// commits must wait for the WAL flush.
func DurablePostgres(t testing.TB) *sqlstore.Store {
	t.Helper()
	u, err := url.Parse(PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Del("synchronous_commit")
	u.RawQuery = q.Encode()
	s, err := sqlstore.Open(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// PostgresDSN returns a DSN for a fresh, migrated schema of its own
// (search_path set in the DSN), dropped when the test ends, for tests that
// start several processes on one database. Everything connected to it must
// be closed by then: cleanups run last-registered first, so register the
// closing after calling PostgresDSN.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	dsn := PostgresEmptyDSN(t)
	migrate(t, dsn)
	return dsn
}

// PostgresEmptyDSN is PostgresDSN without the migration, for tests of
// migrations themselves.
func PostgresEmptyDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvPostgres)
	switch base {
	case "off":
		t.Skipf("testdb: PostgreSQL tests skipped because %s=off", EnvPostgres)
	case "":
		base = DefaultPostgres
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testdb: %s: bad PostgreSQL DSN: %v", EnvPostgres, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	admin, err := sql.Open("pgx", base)
	if err == nil {
		err = admin.PingContext(ctx)
	}
	if err != nil {
		t.Fatalf("testdb: PostgreSQL at %s is unreachable: %v\n"+
			"Start PostgreSQL, point %s at a reachable server, or set %s=off to skip PostgreSQL tests.",
			u.Redacted(), err, EnvPostgres, EnvPostgres)
	}
	defer admin.Close()

	var b [8]byte
	rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("testdb: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() { dropSchema(t, base, schema) })

	q := u.Query()
	q.Set("search_path", schema)
	// Commits need not wait for the disk in tests; visibility and locking
	// are unchanged.
	q.Set("synchronous_commit", "off")
	u.RawQuery = q.Encode()
	return u.String()
}

// dropSchema removes a test schema with a connection of its own, since the
// test's pools are closed by then.
func dropSchema(t testing.TB, base, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Errorf("testdb: drop schema %s: %v", schema, err)
		return
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
		t.Errorf("testdb: drop schema %s: %v", schema, err)
	}
}

// openMigrated opens and migrates a store, closed when the test ends.
func openMigrated(t testing.TB, dsn string) *sqlstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	s, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("testdb: close: %v", err)
		}
	})
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("testdb: %v", err)
	}
	return s
}

// migrate migrates the database at dsn with a handle of its own.
func migrate(t testing.TB, dsn string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	s, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("testdb: %v", err)
	}
}
