package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"math"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// migrationFS holds the numbered migrations, one directory per engine. A
// migration is never edited once released; changes go in a new file.
//
//go:embed migrations
var migrationFS embed.FS

type migration struct {
	version int64
	name    string
	sql     string
}

// migrations returns the dialect's migrations sorted by version. The
// version is the leading number of the file name ("0001_init.sql" → 1).
func (d *dialect) migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, d.migrationsDir)
	if err != nil {
		return nil, err
	}
	var out []migration
	seen := map[int64]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and '_'", name)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, name, v)
		}
		seen[v] = name
		b, err := fs.ReadFile(migrationFS, path.Join(d.migrationsDir, name))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    BIGINT NOT NULL PRIMARY KEY,
	name       TEXT   NOT NULL,
	applied_at BIGINT NOT NULL
)`

// Migrate applies the migrations not yet recorded in schema_migrations, each
// in its own transaction together with its record, so a failed migration
// leaves no trace and a crash never leaves one half applied.
//
// Concurrent migrators (several processes starting at once) are serialised
// per migration: on PostgreSQL by a transaction-scoped advisory lock taken
// before anything else (even CREATE TABLE IF NOT EXISTS races on the
// catalog otherwise), on SQLite by BEGIN IMMEDIATE. Whoever gets the lock
// second sees the version recorded and skips it, so Migrate is idempotent.
// Versions in the database that this binary does not know (a newer binary
// migrated) are left alone.
func (s *Store) Migrate(ctx context.Context) error { return s.migrateTo(ctx, math.MaxInt64) }

// migrateTo applies the migrations up to version last (tests start from an
// older schema with it).
func (s *Store) migrateTo(ctx context.Context, last int64) error {
	list, err := s.d.migrations()
	if err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	for _, m := range list {
		if m.version > last {
			break
		}
		err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error { return s.applyMigration(ctx, tx, m) })
		if err != nil {
			return fmt.Errorf("sqlstore: migrate %s %s: %w", s.d.name, m.name, err)
		}
	}
	return nil
}

func (s *Store) applyMigration(ctx context.Context, tx *sql.Tx, m migration) error {
	if s.d.migrationLock != "" {
		if _, err := tx.ExecContext(ctx, s.d.migrationLock); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, createMigrationsTable); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var n int
	err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.version).Scan(&n)
	if err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	if n > 0 {
		return nil
	}
	// Both drivers run a multi-statement string when it has no arguments.
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, s.d.rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
		m.version, m.name, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}
