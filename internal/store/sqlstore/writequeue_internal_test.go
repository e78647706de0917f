package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// A batch in which one write fails is replayed one write at a time: the
// failing write fails alone and every other write of the batch is stored.
func TestWriteQueueBatchFailsAlone(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "q.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	insert := func(name string) writeOp {
		return func(ctx context.Context, q querier) error {
			_, err := q.ExecContext(ctx, s.d.rebind(`INSERT INTO throttles (throttle_key, count, window_end) VALUES (?, 1, 0)`), name)
			return err
		}
	}
	// Hold the writer with a first write so that the next ones queue up
	// and are taken as one batch.
	release, held := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- s.writes.do(ctx, func(ctx context.Context, q querier) error {
			close(held)
			<-release
			return insert("first")(ctx, q)
		})
	}()
	<-held
	const n = 10
	bad := errors.New("bad write")
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			op := insert(fmt.Sprintf("k%d", i))
			if i == 3 {
				op = func(context.Context, querier) error { return bad }
			}
			errs[i] = s.writes.do(ctx, op)
		})
	}
	for len(s.writes.queue) < n {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatalf("first write: %v", err)
	}
	for i, err := range errs {
		if i == 3 {
			if !errors.Is(err, bad) {
				t.Errorf("failing write: %v, want %v", err, bad)
			}
			continue
		}
		if err != nil {
			t.Errorf("write %d failed with its batch: %v", i, err)
		}
	}
	var rows int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM throttles`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != n { // first + n-1 good ones
		t.Errorf("%d rows stored, want %d", rows, n)
	}
}
