package sqlstore

// Group commit for audit events. Every refresh grant appends an audit event
// after its rotation, and on its own that INSERT was the most expensive
// statement of the grant: one commit that writes the table's page and a
// page of each of its indexes to the WAL (SQLite), or waits for a WAL flush
// (PostgreSQL). One writer goroutine per Store takes the events queued while
// it was busy and inserts them in one transaction, so under load one commit
// serves many grants, while a lone event is inserted at once in its own
// statement (no timer, no added wait). AppendAudit still returns only after
// its event is committed, so nothing is acknowledged that is not stored.

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/latchkey-dev/latchkey/internal/store"
)

// maxAuditBatch bounds one group commit.
const maxAuditBatch = 128

// auditQueueLen is how many appends may wait for the writer before
// AppendAudit blocks.
const auditQueueLen = 1024

const insertAuditSQL = `INSERT INTO audit_events
	(at, event_type, user_id, client_id, family_id, reason, detail)
	VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`

// errStoreClosed is returned by AppendAudit after Close.
var errStoreClosed = fmt.Errorf("store is closed: %w", store.ErrUnavailable)

type auditReq struct {
	e    *store.AuditEvent
	done chan error // buffered (1): the writer never blocks on it
}

var auditReqPool = sync.Pool{New: func() any { return &auditReq{done: make(chan error, 1)} }}

type auditWriter struct {
	s      *Store
	queue  chan *auditReq
	stop   chan struct{} // closed by close: no new appends
	exited chan struct{} // closed when the writer has returned
	once   sync.Once
}

func newAuditWriter(s *Store) *auditWriter {
	w := &auditWriter{s: s, queue: make(chan *auditReq, auditQueueLen), stop: make(chan struct{}), exited: make(chan struct{})}
	go w.run()
	return w
}

// append queues e and waits until it is committed (or failed).
func (w *auditWriter) append(ctx context.Context, e *store.AuditEvent) error {
	r := auditReqPool.Get().(*auditReq)
	r.e = e
	select {
	case <-w.stop:
		auditReqPool.Put(r)
		return errStoreClosed
	default:
	}
	select {
	case w.queue <- r:
	case <-w.stop:
		auditReqPool.Put(r)
		return errStoreClosed
	case <-ctx.Done():
		auditReqPool.Put(r)
		return ctx.Err()
	}
	// Once queued, the event is written even if ctx ends: an audit record
	// must not depend on whether the client waited for the answer.
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
	r.e = nil
	auditReqPool.Put(r)
	return err
}

func (w *auditWriter) run() {
	defer close(w.exited)
	batch := make([]*auditReq, 0, maxAuditBatch)
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
		w.drain(&batch)
		w.write(batch)
	}
}

// drain adds the requests already queued, without waiting for more.
func (w *auditWriter) drain(batch *[]*auditReq) {
	for len(*batch) < maxAuditBatch {
		select {
		case r := <-w.queue:
			*batch = append(*batch, r)
		default:
			return
		}
	}
}

// write commits batch and answers each request. A batch that fails as a
// whole is retried one event at a time, so one bad event fails alone.
func (w *auditWriter) write(batch []*auditReq) {
	ctx := context.Background()
	if len(batch) > 1 {
		q := w.s.d.rebind(insertAuditSQL)
		err := w.s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			// One prepared statement for the batch: the cached one bound to
			// tx (SQLite), else prepared here.
			var st *sql.Stmt
			if c := w.s.cachedStmt(ctx, q); c != nil {
				st = tx.StmtContext(ctx, c)
			} else {
				var err error
				if st, err = tx.PrepareContext(ctx, q); err != nil {
					return err
				}
			}
			defer st.Close()
			for _, r := range batch {
				if err := st.QueryRowContext(ctx, auditArgs(r.e)...).Scan(&r.e.ID); err != nil {
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
		r.done <- w.s.insertAudit(ctx, r.e)
	}
}

func (w *auditWriter) close() {
	w.once.Do(func() { close(w.stop) })
	<-w.exited
}

func auditArgs(e *store.AuditEvent) []any {
	return []any{ms(e.Time), e.Type, e.UserID, e.ClientID, e.FamilyID, e.Reason, e.Detail}
}

// insertAudit inserts one event in its own statement.
func (s *Store) insertAudit(ctx context.Context, e *store.AuditEvent) error {
	return s.retry(ctx, func() error {
		return s.db.write(func() error {
			return s.q().QueryRowContext(ctx, s.d.rebind(insertAuditSQL), auditArgs(e)...).Scan(&e.ID)
		})
	})
}

// cachedStmt returns the cached prepared statement for query, or nil
// (PostgreSQL, or it could not be prepared).
func (s *Store) cachedStmt(ctx context.Context, query string) *sql.Stmt {
	if s.stmts == nil {
		return nil
	}
	return s.stmts.get(ctx, query)
}
