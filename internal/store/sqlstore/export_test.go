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

// RestartCheckpointer replaces the store's WAL checkpointer with one that
// checkpoints every interval and starts the WAL's writeback every writeback
// (SQLite files only).
func (s *Store) RestartCheckpointer(interval, writeback time.Duration) {
	s.ckpt.close()
	s.ckpt = newCheckpointer(s, interval, writeback)
}

// StopCheckpointer stops the WAL checkpointer and its writeback, as Close
// does before it closes the connections.
func (s *Store) StopCheckpointer() { s.ckpt.close() }

// DatabaseSyncs is how many times the checkpointer synced the database
// file before a final pass.
func (s *Store) DatabaseSyncs() int64 { return s.ckpt.dbSyncs.Load() }

// SetWALReadAheadChunk sets how much of the WAL the read-ahead asks for
// at each writeback (call it right after RestartCheckpointer).
func (s *Store) SetWALReadAheadChunk(n int64) { s.ckpt.readAheadChunk.Store(n) }

// WALReadAhead is where the last read-ahead ahead of the WAL's writer
// started, and how many intervals asked for the WAL file's start.
func (s *Store) WALReadAhead() (from, starts int64) {
	return s.ckpt.readAheadFrom.Load(), s.ckpt.readAheads.Load()
}

// WALPath is the store's WAL file.
func (s *Store) WALPath() (string, error) { return s.walPath() }

// WALWritePos is walWritePos.
func WALWritePos(hdr []byte) (int64, error) { return walWritePos(hdr) }

// WALWritebacks is how many writebacks of the WAL file were started.
func (s *Store) WALWritebacks() int64 { return s.ckpt.writebacks.Load() }

// CheckpointNow runs one checkpoint (background passes, then the writer's
// final pass) and returns when it is done.
func (s *Store) CheckpointNow() { s.ckpt.checkpoint() }

// Checkpoints is how many background and final passes have run.
func (s *Store) Checkpoints() (passes, finals int64) {
	return s.ckpt.passes.Load(), s.ckpt.finals.Load()
}

// WALCheckpoint runs one PASSIVE checkpoint: the WAL's size in frames and
// how many of them are copied to the database file.
func (s *Store) WALCheckpoint(ctx context.Context) (log, copied int, err error) {
	return s.walCheckpoint(ctx)
}

// CachedStatements lists the statement texts in the prepared-statement
// cache (SQLite; nil on PostgreSQL).
func (s *Store) CachedStatements() []string {
	if s.stmts == nil {
		return nil
	}
	s.stmts.mu.RLock()
	defer s.stmts.mu.RUnlock()
	out := make([]string, 0, len(s.stmts.m))
	for q := range s.stmts.m {
		out = append(out, q)
	}
	return out
}

// Rebind rewrites q's ? placeholders for s's engine.
func Rebind(s *Store, q string) string { return s.d.rebind(q) }
