package sqlstore

// Pipelined group commits on PostgreSQL. A batch of the write queue used to
// send each statement and wait for its answer: BEGIN, two statements per
// refresh, COMMIT, every one a network round trip after which the writer
// waited for the (busy) Go scheduler to notice the answer. When every
// write of a batch is a single statement (rotations with their audit event
// are one statement on PostgreSQL, see rotateFamily), the batch is sent as
// one pipeline (pgx.Batch): BEGIN, the statements, COMMIT, read back in
// order. The statements run in the same order and in one transaction, as
// before; if any fails the transaction aborts and the batch is replayed one
// write at a time, as before.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// pgStmt is a write that is exactly one statement, in the form a pipeline
// can send. Its outcome goes to the caller through tag or row (exactly one
// is set), which, like a writeOp, may be called more than once.
type pgStmt struct {
	query string // with $n placeholders
	args  []any
	tag   func(pgconn.CommandTag)
	row   func(pgx.Row) error // scans the statement's row; a statement that may return none handles pgx.ErrNoRows itself
}

// pipelinable reports whether every write of batch can be pipelined.
func pipelinable(batch []*writeReq) bool {
	for _, r := range batch {
		if r.pg == nil {
			return false
		}
	}
	return true
}

// errRolledBack is a pipeline whose COMMIT answered ROLLBACK.
var errRolledBack = errors.New("sqlstore: pipelined transaction rolled back")

// pipeline runs batch as BEGIN, its statements and COMMIT in one round trip
// on one connection. Any error means nothing was committed (the caller then
// replays the batch one write at a time).
func (s *Store) pipeline(ctx context.Context, batch []*writeReq) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("sqlstore: pipeline needs a pgx connection, got %T", dc)
		}
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		for _, r := range batch {
			b.Queue(r.pg.query, r.pg.args...)
		}
		b.Queue("COMMIT")
		br := sc.Conn().SendBatch(ctx, b)
		err := readPipeline(br, batch)
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

func readPipeline(br pgx.BatchResults, batch []*writeReq) error {
	if _, err := br.Exec(); err != nil { // BEGIN
		return err
	}
	for _, r := range batch {
		if r.pg.row != nil {
			if err := r.pg.row(br.QueryRow()); err != nil {
				return err
			}
			continue
		}
		tag, err := br.Exec()
		if err != nil {
			return err
		}
		r.pg.tag(tag)
	}
	tag, err := br.Exec() // COMMIT
	if err != nil {
		return err
	}
	if tag.String() != "COMMIT" {
		return errRolledBack
	}
	return nil
}

// tagResult is a sql.Result from a pipelined statement's command tag.
type tagResult struct{ n int64 }

func (r tagResult) LastInsertId() (int64, error) {
	return 0, errors.New("sqlstore: LastInsertId is not supported on PostgreSQL")
}
func (r tagResult) RowsAffected() (int64, error) { return r.n, nil }

var _ sql.Result = tagResult{}
