// Package sqlstore implements store.Store over database/sql for SQLite
// (modernc.org/sqlite, pure Go, so CGO_ENABLED=0 builds work) and PostgreSQL
// (github.com/jackc/pgx/v5/stdlib).
//
// One implementation serves both engines; the differences (placeholders,
// row locking, error classification, migration locking) live in a small
// dialect value. Queries are written once with `?` placeholders and rebound
// to `$n` for PostgreSQL.
//
// Encoding, identical on both engines so the schemas stay comparable:
//   - times are BIGINT unix milliseconds in UTC, the zero time.Time is 0
//     (so sub-millisecond precision is dropped and a time of exactly the
//     Unix epoch reads back as the zero time);
//   - durations are BIGINT milliseconds;
//   - scope-like lists (scopes, grant types, AMR, prompt, ACR values) are one
//     space-joined TEXT, and an element that is empty or contains whitespace
//     is rejected rather than silently split; redirect URIs are JSON;
//   - byte slices are BLOB/BYTEA, with an empty slice stored as NULL and read
//     back as nil.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"modernc.org/sqlite"               // also registers the "sqlite" driver

	"github.com/latchkey-dev/latchkey/internal/store"
)

var _ store.Store = (*Store)(nil)

// Store is a store.Store backed by SQLite or PostgreSQL. It is safe for
// concurrent use by many goroutines, and several Stores (in one process or
// many) may share one database.
type Store struct {
	db  pool
	d   *dialect
	dsn string
	// stmts caches prepared statements of the hot path (SQLite only, nil
	// on PostgreSQL); see hotpath.go.
	stmts *stmtCache
	// writes group-commits the hot path's writes (writequeue.go).
	writes *writeQueue
	// clients caches client records (clientcache.go).
	clients *clientCache
	// watch listens for other processes' client writes (clientwatch.go).
	watch clientWatch
	// ckpt checkpoints the WAL (file-backed SQLite only; checkpoint.go).
	ckpt *checkpointer
	// locked holds the checkpointer's descriptors on the files SQLite
	// locks, closed after the last connection (lockedfiles.go).
	locked lockedFiles
	// onCheckpoint observes each of ckpt's passes (OnCheckpoint).
	onCheckpoint atomic.Pointer[func(CheckpointPass)]
	// pipelineTried and pipelined count the batches sent as one pipeline
	// and those committed that way (PostgreSQL; pipeline.go), for tests.
	pipelineTried, pipelined atomic.Int64
}

// Pool defaults. They can be changed through DB().
const (
	// SQLite allows one writer at a time, so a large pool only adds
	// connections polling the busy handler; readers run concurrently under
	// WAL, so a few connections still help. Connections are kept (no idle
	// timeout) because each one runs its PRAGMAs when opened.
	sqliteMaxOpenConns = 8
	// PostgreSQL: enough for one server instance, small enough that several
	// instances (and parallel test packages) fit under the default
	// max_connections of 100. Idle connections are closed after a while and
	// all are recycled periodically so failovers and config changes are
	// picked up. Every open connection may stay idle: with a lower idle
	// limit, a load that hovers around it closes and reopens connections
	// (a new server process each) many times a second
	// (docs/BENCHMARKS.md).
	postgresMaxOpenConns    = 10
	postgresMaxIdleConns    = postgresMaxOpenConns
	postgresConnMaxIdleTime = 5 * time.Minute
	postgresConnMaxLifetime = 30 * time.Minute

	// sqliteBusyTimeout is how long a SQLite connection waits for another
	// connection's (or process's) write lock before failing with SQLITE_BUSY.
	sqliteBusyTimeout = 10 * time.Second
)

// Open connects to the database named by dsn and checks it is reachable.
// It does not change the schema; call Migrate for that.
//
// A dsn starting with postgres:// or postgresql:// selects PostgreSQL; any
// pgx connection parameter may be given, including runtime parameters such
// as search_path. Anything else is a SQLite file path (or a file: URI). For
// SQLite, Open adds the settings that let many goroutines and several
// processes (a CLI next to a running server) share the file without
// SQLITE_BUSY errors: WAL journal mode, a 10s busy timeout, foreign keys,
// synchronous=NORMAL (durable under WAL except for the last commits on power
// loss) and BEGIN IMMEDIATE for write transactions, so a transaction never
// has to upgrade a read lock to a write lock (which fails without waiting).
// SQLite's automatic checkpoint is off: a file-backed Store checkpoints the
// WAL in the background, every 2 s while it is written to
// (checkpoint.go).
//
// Pool defaults: SQLite 8 open connections, never closed while idle;
// PostgreSQL 10 open (all may stay idle), closed after 5 minutes idle and
// recycled every 30 minutes. An in-memory SQLite database (":memory:" or
// mode=memory) gets a single connection, since each connection would
// otherwise see its own database.
func Open(ctx context.Context, dsn string) (*Store, error) {
	var (
		d       *dialect
		connStr string
	)
	if IsPostgres(dsn) {
		d, connStr = postgresDialect, dsn
	} else {
		if dsn == "" {
			return nil, errors.New("sqlstore: empty dsn")
		}
		d, connStr = sqliteDialect, sqliteDSN(dsn)
	}
	db, err := sql.Open(d.driver, connStr)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open %s: %w", d.name, err)
	}
	if d == sqliteDialect {
		n := sqliteMaxOpenConns
		if isSQLiteMemory(dsn) {
			n = 1
		}
		db.SetMaxOpenConns(n)
		db.SetMaxIdleConns(n)
		db.SetConnMaxIdleTime(0)
		db.SetConnMaxLifetime(0)
	} else {
		db.SetMaxOpenConns(postgresMaxOpenConns)
		db.SetMaxIdleConns(postgresMaxIdleConns)
		db.SetConnMaxIdleTime(postgresConnMaxIdleTime)
		db.SetConnMaxLifetime(postgresConnMaxLifetime)
	}
	s := &Store{db: pool{DB: db}, d: d, dsn: dsn, clients: newClientCache(ClientCacheTTL)}
	if d == sqliteDialect {
		s.db.detach = true
		s.stmts = newStmtCache(s.db)
	}
	err = s.retry(ctx, func() error { return db.PingContext(ctx) })
	if err == nil && d == sqliteDialect && !isSQLiteMemory(dsn) {
		err = s.retry(ctx, func() error { return setWAL(ctx, db) })
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlstore: connect to %s: %w", d.name, err)
	}
	s.writes = newWriteQueue(s)
	if d == sqliteDialect && !isSQLiteMemory(dsn) {
		s.ckpt = newCheckpointer(s, checkpointInterval, walWritebackInterval)
	}
	return s, nil
}

// setWAL switches the database file to WAL journal mode. The mode is
// persistent, so this is done once per Open rather than per connection:
// converting a fresh file needs an exclusive lock and fails with
// SQLITE_BUSY at once, without waiting for busy_timeout, when another
// process is converting it at the same moment (seen with several processes
// opening a new file), so the caller retries it.
func setWAL(ctx context.Context, db *sql.DB) error {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	return nil
}

// sqliteDSN appends the per-connection settings Open documents to a SQLite
// path. The driver applies busy_timeout first. WAL mode is not among them:
// it is a property of the file, set once by Open (see setWAL).
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	// The Store checkpoints the WAL itself, off the commit path
	// (checkpoint.go).
	q.Add("_pragma", "wal_autocheckpoint(0)")
	q.Set("_txlock", "immediate")
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + q.Encode()
}

func isSQLiteMemory(dsn string) bool {
	return strings.Contains(dsn, ":memory:") || strings.Contains(dsn, "mode=memory")
}

// Engine reports "sqlite" or "postgres".
func (s *Store) Engine() string { return s.d.name }

// DB returns the underlying pool, for tuning (SetMaxOpenConns and friends)
// and diagnostics. Writing to the tables directly bypasses the store's
// invariants.
func (s *Store) DB() *sql.DB { return s.db.DB }

// Reopen opens a second, independent Store (with its own pool) on the same
// database, as another process would. The conformance suite uses it to check
// that separate handles see each other's writes.
func (s *Store) Reopen(ctx context.Context) (store.Store, error) {
	return Open(ctx, s.dsn)
}

// Ping checks the database is reachable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: ping: %w", err)
	}
	return nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.watch.stop()
	if s.ckpt != nil {
		s.ckpt.close()
	}
	if s.writes != nil {
		s.writes.close()
	}
	s.stmts.close()
	err := s.db.Close()
	s.locked.close() // after the connections: see lockedFiles
	return err
}

// dialect holds everything that differs between the engines.
type dialect struct {
	name   string
	driver string
	// dollar rebinds `?` placeholders to `$1, $2, ...`.
	dollar bool
	// forUpdate is appended to the SELECT of a read-modify-write
	// transaction. SQLite needs none: BEGIN IMMEDIATE already holds the
	// database's write lock.
	forUpdate string
	// migrationLock is run first in every migration transaction so that
	// concurrent migrators queue up; empty for SQLite, where BEGIN
	// IMMEDIATE serialises them. The key includes the current schema so
	// that stores in different schemas (tests) don't wait for each other.
	migrationLock string
	// migrationsDir is the embedded directory holding this engine's
	// numbered migrations.
	migrationsDir string
	isUnique      func(error) bool
	isTransient   func(error) bool
}

var sqliteDialect = &dialect{
	name:          "sqlite",
	driver:        "sqlite",
	migrationsDir: "migrations/sqlite",
	isUnique: func(err error) bool {
		var e *sqlite.Error
		// SQLITE_CONSTRAINT_UNIQUE (2067) and SQLITE_CONSTRAINT_PRIMARYKEY
		// (1555); the driver enables extended result codes.
		return errors.As(err, &e) && (e.Code() == 2067 || e.Code() == 1555)
	},
	isTransient: func(err error) bool {
		var e *sqlite.Error
		// SQLITE_BUSY (5) and SQLITE_LOCKED (6), with any extended code.
		return errors.As(err, &e) && (e.Code()&0xff == 5 || e.Code()&0xff == 6)
	},
}

var postgresDialect = &dialect{
	name:          "postgres",
	driver:        "pgx",
	dollar:        true,
	forUpdate:     " FOR UPDATE",
	migrationLock: "SELECT pg_advisory_xact_lock(1282367849, hashtext(coalesce(current_schema(), '')))",
	migrationsDir: "migrations/postgres",
	isUnique: func(err error) bool {
		var e *pgconn.PgError
		return errors.As(err, &e) && e.Code == "23505" // unique_violation
	},
	isTransient: func(err error) bool {
		var e *pgconn.PgError
		// serialization_failure, deadlock_detected
		return errors.As(err, &e) && (e.Code == "40001" || e.Code == "40P01")
	},
}

// rebind turns `?` placeholders into `$n` for PostgreSQL. It skips quoted
// literals and identifiers; the store's queries have no other `?`.
func (d *dialect) rebind(query string) string {
	if !d.dollar {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// querier is what *sql.DB and *sql.Tx have in common, so private helpers
// work inside or outside a transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// maxAttempts bounds retries of transient errors (PostgreSQL serialization
// failures and deadlocks; SQLite busy/locked after busy_timeout ran out).
const maxAttempts = 5

// retry runs op again while it fails with a transient error, with a short
// jittered backoff, until maxAttempts or ctx ends.
func (s *Store) retry(ctx context.Context, op func() error) error {
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil || attempt >= maxAttempts || !s.d.isTransient(err) {
			return err
		}
		backoff := time.Duration(attempt*attempt)*5*time.Millisecond +
			time.Duration(rand.Int64N(int64(5*time.Millisecond)))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// pool is the connection pool. On SQLite it runs every statement with a
// context that cannot be canceled (context.WithoutCancel): with a context
// that can, database/sql and the modernc driver each start a goroutine per
// statement to watch it, five or more per refresh grant. Under load those
// goroutines crowded the scheduler's run queue until some requests waited
// more than a second to be scheduled (docs/BENCHMARKS.md, "tail latency").
// SQLite statements here run for microseconds on a local file, and a wait
// for the write lock is bounded by busy_timeout, so canceling them on a
// client's disconnect bought nothing. A context that has already ended is
// passed on as it is, so a request that is gone (or past its deadline)
// still runs nothing. PostgreSQL statements cross a network and keep the
// caller's context.
type pool struct {
	*sql.DB
	detach bool
}

func (p pool) ctx(ctx context.Context) context.Context {
	if p.detach && ctx.Err() == nil {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

func (p pool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return p.DB.ExecContext(p.ctx(ctx), query, args...)
}

func (p pool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return p.DB.QueryContext(p.ctx(ctx), query, args...)
}

func (p pool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return p.DB.QueryRowContext(p.ctx(ctx), query, args...)
}

func (p pool) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	return p.DB.BeginTx(p.ctx(ctx), opts)
}

func (p pool) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return p.DB.PrepareContext(p.ctx(ctx), query)
}

// tx runs fn in a write transaction (BEGIN IMMEDIATE on SQLite, READ
// COMMITTED on PostgreSQL), committing if fn returns nil, and retries the
// whole transaction on transient errors. fn may therefore run more than
// once and must not have side effects outside tx; it must not call the
// Store either (it runs on the write queue's goroutine). It goes through the write queue (writequeue.go), so
// concurrent writes share one commit.
func (s *Store) tx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	return s.writes.doTx(s.db.ctx(ctx), fn)
}

// txDirect is tx without the queue: the queue's own way to commit.
func (s *Store) txDirect(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	ctx = s.db.ctx(ctx)
	return s.retry(ctx, func() error {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		if err := fn(ctx, tx); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	})
}

// exec runs one statement outside an explicit transaction, retrying
// transient errors, through the write queue (writequeue.go): concurrent
// statements share one commit.
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	q := s.d.rebind(query)
	op := func(ctx context.Context, qr querier) error {
		var err error
		res, err = qr.ExecContext(ctx, q, args...)
		return err
	}
	var pg *pgStmt
	if s.d == postgresDialect {
		pg = &pgStmt{query: q, args: args, tag: func(t pgconn.CommandTag) { res = tagResult{t.RowsAffected()} }}
	}
	err := s.writes.doStmt(s.db.ctx(ctx), op, pg)
	return res, err
}

// wrap adds context to a driver error, mapping unique violations to
// store.ErrConflict, sql.ErrNoRows to store.ErrNotFound and connection
// trouble to store.ErrUnavailable (see unavailable.go) while keeping the
// original error in the chain.
func (s *Store) wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	msg := "sqlstore: " + fmt.Sprintf(format, args...)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrAlreadyUsed), errors.Is(err, store.ErrUnavailable):
		return fmt.Errorf("%s: %w", msg, err)
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", msg, store.ErrNotFound)
	case s.d.isUnique(err):
		return fmt.Errorf("%s: %w (%w)", msg, store.ErrConflict, err)
	case s.d.unavailable(err):
		return fmt.Errorf("%s: %w (%w)", msg, store.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// mustAffect turns "no row matched" into store.ErrNotFound.
func mustAffect(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// IsPostgres reports whether dsn names a PostgreSQL database (Open's rule:
// a postgres:// or postgresql:// URL; anything else is a SQLite file).
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}
