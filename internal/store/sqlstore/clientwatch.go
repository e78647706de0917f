package sqlstore

// Client-cache invalidation across processes on PostgreSQL.
//
// The client cache (clientcache.go) drops a record at once when this Store
// writes it, but another server instance, or the CLI, writing the same
// client is seen only when the entry expires (ClientCacheTTL, 1 s by
// default). On PostgreSQL every client write is followed by a NOTIFY on
// clientsChannel with the client's id, and a Store whose owner called
// WatchClients (`latchkey serve` does) LISTENs on its own connection and
// drops the entry when the notification arrives: a deleted client, a
// replaced secret or a removed redirect URI stops working on every
// instance within milliseconds instead of up to a second.
//
// The TTL stays as the bound when a notification is missed: while the
// listening connection is down (it is re-established with backoff) the
// whole cache is dropped on each reconnect, and entries expire as before.
// A NOTIFY that fails after a committed write is not retried: the TTL
// covers it. SQLite has no such channel; there the TTL is the bound.

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// clientsChannel is the PostgreSQL notification channel of client writes;
// the payload is the client id. Every schema of a database shares it, so a
// Store may drop an entry another schema's client of the same id caused:
// a needless re-read, never a stale record.
const clientsChannel = "latchkey_clients"

// clientWatchApp is the application_name of the listening connection, so
// that it can be told apart in pg_stat_activity.
const clientWatchApp = "latchkey-client-watch"

// Reconnect backoff of the listening connection.
const (
	clientWatchMinBackoff = 100 * time.Millisecond
	clientWatchMaxBackoff = 30 * time.Second
)

// notifyClientWrite tells other Stores watching this database that client
// id changed. Errors (ctx done, the database gone) are ignored: the write
// itself succeeded, and other instances see it within the cache TTL anyway.
func (s *Store) notifyClientWrite(ctx context.Context, id string) {
	if s.d != postgresDialect {
		return
	}
	_, _ = s.db.ExecContext(ctx, "SELECT pg_notify($1, $2)", clientsChannel, id)
}

// WatchClients keeps this Store's client cache in step with client writes
// made by other processes on the same PostgreSQL database, until ctx is
// done or the Store is closed; it holds one connection of its own for
// that. On SQLite, and when a watcher already runs, it does nothing. log
// (may be nil) is told when the listening connection is lost and when it
// is back.
func (s *Store) WatchClients(ctx context.Context, log *slog.Logger) {
	if s.d != postgresDialect {
		return
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s.watch.mu.Lock()
	defer s.watch.mu.Unlock()
	if s.watch.closed || s.watch.cancel != nil {
		return
	}
	ctx, s.watch.cancel = context.WithCancel(ctx)
	s.watch.wg.Go(func() { s.watchClients(ctx, log) })
}

// WatchingClients reports whether the listening connection is up.
func (s *Store) WatchingClients() bool { return s.watch.on.Load() }

func (s *Store) watchClients(ctx context.Context, log *slog.Logger) {
	backoff := clientWatchMinBackoff
	lost := false
	for {
		err := s.listenClients(ctx, func() {
			backoff = clientWatchMinBackoff
			if lost {
				log.Info("client cache: listening for client changes again")
				lost = false
			}
		})
		// Notifications may have been missed while the connection was
		// down: start from an empty cache.
		s.clients.invalidate("")
		if ctx.Err() != nil {
			return
		}
		if !lost {
			// The error is pgx's (network, server shutdown); it carries no
			// client data.
			log.Warn("client cache: not listening for client changes; other instances' client writes are seen within client_cache_ttl until it is back",
				slog.String("error", err.Error()))
			lost = true
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, clientWatchMaxBackoff)
	}
}

// listenClients holds one listening connection until it fails or ctx is
// done, dropping the cache entry of every client id notified.
func (s *Store) listenClients(ctx context.Context, connected func()) error {
	cfg, err := pgx.ParseConfig(s.dsn)
	if err != nil {
		return err
	}
	cfg.RuntimeParams["application_name"] = clientWatchApp
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		// ctx may be done; a dead peer must not hold Close up for long.
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+clientsChannel); err != nil {
		return err
	}
	// Writes committed before LISTEN took effect sent notifications this
	// connection never sees.
	s.clients.invalidate("")
	s.watch.on.Store(true)
	defer s.watch.on.Store(false)
	connected()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		s.clients.invalidate(n.Payload)
	}
}

// clientWatch is a Store's WatchClients state.
type clientWatch struct {
	on     atomic.Bool // the listening connection is up
	mu     sync.Mutex
	closed bool
	cancel context.CancelFunc // stops the watcher; nil: none started
	wg     sync.WaitGroup
}

// stop ends the watcher and waits for it (Store.Close).
func (w *clientWatch) stop() {
	w.mu.Lock()
	w.closed = true
	if w.cancel != nil {
		w.cancel()
	}
	w.mu.Unlock()
	w.wg.Wait()
}
