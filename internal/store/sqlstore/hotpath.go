package sqlstore

// A prepared-statement cache for the token endpoint's hot path, SQLite
// only. SQLite parses and plans every statement text it is given; for the
// short queries of a refresh (client, throttle counters, family, user, the
// rotation UPDATE, the audit INSERT) that was more than half of each query's
// CPU and about a fifth of the whole request's (docs/BENCHMARKS.md).
// PostgreSQL needs none: pgx already caches prepared statements per
// connection. database/sql prepares a cached statement again on each pool
// connection that runs it, and SQLite re-prepares it by itself after a
// schema change, so the cache changes no behaviour.

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStmts bounds the cache; statements past it run unprepared. The
// store's statement texts are a fixed, small set, so it is never reached in
// practice.
const maxCachedStmts = 256

type stmtCache struct {
	db pool
	mu sync.RWMutex
	m  map[string]*sql.Stmt
}

func newStmtCache(db pool) *stmtCache {
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
	db    pool
	cache *stmtCache
}

// q returns the querier for statements outside transactions on the hot
// path. Queries must already be rebound.
func (s *Store) q() querier { return cachedDB{s.db, s.stmts} }

func (c cachedDB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if c.cache != nil {
		if st := c.cache.get(ctx, query); st != nil {
			return st.ExecContext(c.db.ctx(ctx), args...)
		}
	}
	return c.db.ExecContext(ctx, query, args...)
}

func (c cachedDB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if c.cache != nil {
		if st := c.cache.get(ctx, query); st != nil {
			return st.QueryContext(c.db.ctx(ctx), args...)
		}
	}
	return c.db.QueryContext(ctx, query, args...)
}

func (c cachedDB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if c.cache != nil {
		if st := c.cache.get(ctx, query); st != nil {
			return st.QueryRowContext(c.db.ctx(ctx), args...)
		}
	}
	return c.db.QueryRowContext(ctx, query, args...)
}
