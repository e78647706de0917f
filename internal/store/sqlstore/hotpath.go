package sqlstore

// Two SQLite-only measures for the token endpoint's hot path (see
// docs/BENCHMARKS.md for the numbers):
//
//   - A prepared-statement cache. SQLite parses and plans every statement
//     text it is given; for the short queries of a refresh that was about a
//     fifth of the whole request's CPU. PostgreSQL needs none: pgx already
//     caches prepared statements per connection.
//
//   - An in-process queue for writers. SQLite has one write lock per file;
//     connections of one pool that want it at the same moment get
//     SQLITE_BUSY and poll it from the busy handler, sleeping 1, 2, 5 ... 100
//     ms between tries, so under concurrent refreshes a write could wait far
//     longer than the writes ahead of it took. Writers of this Store now wait
//     their turn on a channel (FIFO) instead. It is only an optimisation: a
//     writer that has waited sqliteBusyTimeout, or whose context ends, goes
//     ahead without its turn and SQLite's own locking decides, exactly as
//     before, so no caller can deadlock on it. Other processes (the CLI, a
//     second server) still meet the busy handler.

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// maxCachedStmts bounds the cache; statements past it run unprepared. The
// store's statement texts are a fixed, small set, so it is never reached in
// practice.
const maxCachedStmts = 256

type stmtCache struct {
	db *sql.DB
	mu sync.RWMutex
	m  map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}}
}

// get returns the prepared statement for query, or nil when it cannot be
// prepared (the caller then runs query directly, so errors surface exactly
// as without the cache).
func (c *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	c.mu.RLock()
	st, full := c.m[query], len(c.m) >= maxCachedStmts
	c.mu.RUnlock()
	if st != nil || full {
		return st
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[query]; old != nil { // prepared concurrently
		st.Close()
		return old
	}
	if c.m == nil || len(c.m) >= maxCachedStmts { // closed, or full
		st.Close()
		return nil
	}
	c.m[query] = st
	return st
}

func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = nil
}

// cachedDB is a querier over the pool that uses prepared statements from
// the cache when there is one (SQLite).
type cachedDB struct {
	db    *sql.DB
	cache *stmtCache
}

// q returns the querier for statements outside transactions on the hot
// path. Queries must already be rebound.
func (s *Store) q() querier { return cachedDB{s.db, s.stmts} }

func (c cachedDB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if c.cache != nil {
		if st := c.cache.get(ctx, query); st != nil {
			return st.ExecContext(ctx, args...)
		}
	}
	return c.db.ExecContext(ctx, query, args...)
}

func (c cachedDB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if c.cache != nil {
		if st := c.cache.get(ctx, query); st != nil {
			return st.QueryContext(ctx, args...)
		}
	}
	return c.db.QueryContext(ctx, query, args...)
}

func (c cachedDB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if c.cache != nil {
		if st := c.cache.get(ctx, query); st != nil {
			return st.QueryRowContext(ctx, args...)
		}
	}
	return c.db.QueryRowContext(ctx, query, args...)
}

// writeTurn waits for this Store's turn to write (SQLite; a no-op on
// PostgreSQL) and returns the function that ends it. It gives up waiting,
// and returns a no-op, after sqliteBusyTimeout or when ctx ends.
func (s *Store) writeTurn(ctx context.Context) (done func()) {
	if s.writers == nil {
		return func() {}
	}
	release := func() { <-s.writers }
	select {
	case s.writers <- struct{}{}:
		return release
	default:
	}
	t := time.NewTimer(sqliteBusyTimeout)
	defer t.Stop()
	select {
	case s.writers <- struct{}{}:
		return release
	case <-ctx.Done():
	case <-t.C:
	}
	return func() {}
}
