package sqlstore

import "context"

// MigrateTo applies the migrations up to version last, so tests can start
// from an older schema.
func (s *Store) MigrateTo(ctx context.Context, last int64) error { return s.migrateTo(ctx, last) }
