package sqlstore

import (
	"context"
	"time"
)

// MigrateTo applies the migrations up to version last, so tests can start
// from an older schema.
func (s *Store) MigrateTo(ctx context.Context, last int64) error { return s.migrateTo(ctx, last) }

// SetClientCacheClock replaces the client cache's clock (call it before the
// store is used), so tests can step over ClientCacheTTL.
func (s *Store) SetClientCacheClock(now func() time.Time) { s.clients.now = now }
