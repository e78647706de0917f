package sqlstore

// Group commit for every write of a Store. A refresh grant's rotation and
// its audit event were two commits, the most expensive part of a grant
// after the signatures: on SQLite a commit writes every page it changed (the
// row's page, a page per index) to the WAL with two write calls each; on
// PostgreSQL it waits for a WAL flush. One writer goroutine per Store takes
// the writes queued while it was busy and runs them in one transaction, so
// under load one commit serves many requests. A lone write still runs at
// once in its own statement or transaction (no timer, no added wait), and
// every caller returns only after its write is committed: nothing is
// acknowledged that is not stored. Being the process's only writer, the
// writer also never waits in SQLite's busy handler (which sleeps 1 to
// 100 ms a try however soon the lock frees) for another connection of the
// same process; other processes on the same file still do, up to
// busy_timeout.

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
)

// MaxWriteBatch bounds one group commit (and sizes the arrival-order
// server's workers on PostgreSQL, server.PostgresWorkersPerCore).
const MaxWriteBatch = 128

// writeQueueLen is how many writes may wait for the writer before callers
// block.
const writeQueueLen = 1024

// errStoreClosed is returned by queued writes after Close.
var errStoreClosed = fmt.Errorf("store is closed: %w", store.ErrUnavailable)

// writeOp runs one write with q, a transaction or the pool. It returns an
// error only for a failed statement; outcomes such as "no row matched" go
// to the caller through the closure, so they do not abort the batch. It may
// run more than once (a batch is retried, or replayed one write at a time)
// and must set its outcome afresh each time.
type writeOp func(ctx context.Context, q querier) error

type writeReq struct {
	op   writeOp                                     // one statement, or
	txfn func(ctx context.Context, tx *sql.Tx) error // a transaction (Store.tx)
	pg   *pgStmt                                     // op's statement in pipeline form (PostgreSQL; pipeline.go)
	ckpt bool                                        // the final checkpoint pass (checkpoint.go), run after the batch
	done chan error                                  // buffered (1): the writer never blocks on it
}

var writeReqPool = sync.Pool{New: func() any { return &writeReq{done: make(chan error, 1)} }}

// release clears r (so the pool holds no closures) and returns it to the
// pool.
func (r *writeReq) release() {
	r.op, r.txfn, r.pg, r.ckpt = nil, nil, nil, false
	writeReqPool.Put(r)
}

type writeQueue struct {
	s      *Store
	queue  chan *writeReq
	stop   chan struct{} // closed by close: no new writes
	exited chan struct{} // closed when the writer has returned
	once   sync.Once
	// commits counts the batches written, so the checkpointer knows
	// whether there is anything to checkpoint.
	commits atomic.Int64
}

func newWriteQueue(s *Store) *writeQueue {
	w := &writeQueue{s: s, queue: make(chan *writeReq, writeQueueLen), stop: make(chan struct{}), exited: make(chan struct{})}
	go w.run()
	return w
}

// do queues op and waits until it is committed (or failed). Once queued,
// op runs even if ctx ends: whether a rotation or an audit record is stored
// must not depend on whether the client waited for the answer.
func (w *writeQueue) do(ctx context.Context, op writeOp) error {
	return w.enqueue(ctx, op, nil, nil, false)
}

// doStmt is do for a write that is one statement, pg, which op runs: on
// PostgreSQL a batch of such writes is pipelined (pipeline.go). pg may be
// nil (SQLite).
func (w *writeQueue) doStmt(ctx context.Context, op writeOp, pg *pgStmt) error {
	return w.enqueue(ctx, op, nil, pg, false)
}

// doTx queues fn, a transaction: alone it runs in its own transaction, in a
// batch as part of the batch's. An error from fn rolls back the batch,
// which is then replayed one write at a time, so fn's error (and the
// rollback of what fn wrote) stays its own.
func (w *writeQueue) doTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	return w.enqueue(ctx, nil, fn, nil, false)
}

// finalCheckpoint has the writer run a checkpoint pass between two
// batches, with no commit in flight (checkpoint.go).
func (w *writeQueue) finalCheckpoint(ctx context.Context) error {
	return w.enqueue(ctx, nil, nil, nil, true)
}

func (w *writeQueue) enqueue(ctx context.Context, op writeOp, txfn func(ctx context.Context, tx *sql.Tx) error, pg *pgStmt, ckpt bool) error {
	select {
	case <-w.stop:
		return errStoreClosed
	default:
	}
	r := writeReqPool.Get().(*writeReq)
	r.op, r.txfn, r.pg, r.ckpt = op, txfn, pg, ckpt
	select {
	case w.queue <- r:
	case <-w.stop:
		r.release()
		return errStoreClosed
	case <-ctx.Done():
		r.release()
		return ctx.Err()
	}
	var err error
	select {
	case err = <-r.done:
	case <-w.exited:
		select {
		case err = <-r.done: // written in the writer's final drain
		default:
			err = errStoreClosed
		}
	}
	r.release()
	return err
}

func (w *writeQueue) run() {
	defer close(w.exited)
	batch := make([]*writeReq, 0, MaxWriteBatch)
	for {
		select {
		case r := <-w.queue:
			batch = append(batch[:0], r)
		case <-w.stop:
			// Write what was queued before the stop, then exit.
			for {
				batch = batch[:0]
				w.drain(&batch)
				if len(batch) == 0 {
					return
				}
				w.write(batch)
			}
		}
		// SQLite: let the goroutines that are ready to run go first: under
		// load they are requests about to queue their own writes, which
		// then share this commit. With nothing else to run this returns at
		// once, so a lone write is not delayed. SQLite commits without
		// leaving the process, so without the yield every batch would be
		// one write. PostgreSQL: no yield. Its commit waits for the server,
		// and the writes queued during that wait make the next batch; a
		// yield only delays the commit (docs/BENCHMARKS.md, session 3).
		if w.s.d == sqliteDialect {
			runtime.Gosched()
		}
		w.drain(&batch)
		w.write(batch)
	}
}

// drain adds the requests already queued, without waiting for more.
func (w *writeQueue) drain(batch *[]*writeReq) {
	for len(*batch) < MaxWriteBatch {
		select {
		case r := <-w.queue:
			*batch = append(*batch, r)
		default:
			return
		}
	}
}

// write commits batch and answers each request. A batch that fails as a
// whole is replayed one write at a time, so a failing write fails alone.
// Checkpoint requests run after the batch's commit.
func (w *writeQueue) write(batch []*writeReq) {
	var ckpts []*writeReq
	if n := len(batch); n > 0 {
		writes := batch[:0]
		for _, r := range batch {
			if r.ckpt {
				ckpts = append(ckpts, r)
			} else {
				writes = append(writes, r)
			}
		}
		batch = writes
		if len(batch) < n {
			defer func() {
				t0 := time.Now()
				log, copied, err := w.s.walCheckpoint(context.Background())
				w.s.observeCheckpoint(CheckpointPass{Final: true, Duration: time.Since(t0), WALFrames: log, Copied: copied, Err: err})
				for _, r := range ckpts {
					r.done <- err
				}
			}()
		}
	}
	if len(batch) == 0 {
		return
	}
	w.commits.Add(1)
	w.commitBatch(batch)
}

func (w *writeQueue) commitBatch(batch []*writeReq) {
	ctx := context.Background()
	if len(batch) > 1 && w.s.d == postgresDialect && pipelinable(batch) {
		w.s.pipelineTried.Add(1)
		if err := w.s.pipeline(ctx, batch); err == nil {
			w.s.pipelined.Add(1)
			for _, r := range batch {
				r.done <- nil
			}
			return
		}
	} else if len(batch) > 1 {
		err := w.s.txDirect(ctx, func(ctx context.Context, tx *sql.Tx) error {
			q := txQuerier{tx, w.s.stmts}
			for _, r := range batch {
				var err error
				if r.txfn != nil {
					err = r.txfn(ctx, tx)
				} else {
					err = r.op(ctx, q)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			for _, r := range batch {
				r.done <- nil
			}
			return
		}
	}
	for _, r := range batch {
		if r.txfn != nil {
			r.done <- w.s.txDirect(ctx, r.txfn)
			continue
		}
		r.done <- w.s.retry(ctx, func() error { return r.op(ctx, w.s.q()) })
	}
}

func (w *writeQueue) close() {
	w.once.Do(func() { close(w.stop) })
	<-w.exited
}

// txQuerier runs statements in tx, through the prepared-statement cache
// when there is one (SQLite): preparing each statement anew inside the
// batch would cost more than the commit it saves.
type txQuerier struct {
	tx    *sql.Tx
	cache *stmtCache
}

func (q txQuerier) stmt(ctx context.Context, query string) *sql.Stmt {
	if q.cache == nil {
		return nil
	}
	if st := q.cache.get(ctx, query); st != nil {
		return q.tx.StmtContext(ctx, st)
	}
	return nil
}

func (q txQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := q.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return q.tx.ExecContext(ctx, query, args...)
}

func (q txQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := q.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.tx.QueryContext(ctx, query, args...)
}

func (q txQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := q.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.tx.QueryRowContext(ctx, query, args...)
}
