package sqlstore

import (
	"context"
	"time"
)

// MigrateTo applies the migrations up to version last, so tests can start
// from an older schema.
func (s *Store) MigrateTo(ctx context.Context, last int64) error { return s.migrateTo(ctx, last) }

// Pipelines is how many batches were sent as one pipeline, and how many of
// them were committed that way.
func (s *Store) Pipelines() (tried, committed int64) {
	return s.pipelineTried.Load(), s.pipelined.Load()
}

// HoldWriter queues a write that keeps the writer busy until release is
// called, so that the writes queued meanwhile form one batch. It returns
// once the writer is held.
func (s *Store) HoldWriter(ctx context.Context) (release func()) {
	held, rel := make(chan struct{}), make(chan struct{})
	go s.writes.do(ctx, func(context.Context, querier) error { close(held); <-rel; return nil })
	<-held
	return func() { close(rel) }
}

// QueuedWrites is how many writes wait for the writer.
func (s *Store) QueuedWrites() int { return len(s.writes.queue) }

// SetClientCacheClock replaces the client cache's clock (call it before the
// store is used), so tests can step over ClientCacheTTL.
func (s *Store) SetClientCacheClock(now func() time.Time) { s.clients.now = now }
