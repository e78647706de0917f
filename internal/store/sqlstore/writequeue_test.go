package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
)

// Audit appends and rotations are group-committed (writequeue.go): many concurrent
// appends must each get their own id, return only once stored, and be all
// there afterwards; appends racing Close either succeed (and are stored) or
// fail with store.ErrUnavailable, and never hang.
func TestAuditGroupCommit(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			s := e.open(t)
			const workers, each = 48, 25
			now := time.Now().UTC().Truncate(time.Millisecond)
			var (
				mu  sync.Mutex
				ids = map[int64]string{}
				wg  sync.WaitGroup
			)
			for w := range workers {
				wg.Go(func() {
					for i := range each {
						ev := &store.AuditEvent{Time: now, Type: "test.group", UserID: "group-test", FamilyID: fmt.Sprintf("f%d-%d", w, i)}
						if err := s.AppendAudit(ctx, ev); err != nil {
							t.Errorf("append: %v", err)
							return
						}
						mu.Lock()
						if prev, dup := ids[ev.ID]; dup || ev.ID == 0 {
							t.Errorf("id %d given to %s and %s", ev.ID, prev, ev.FamilyID)
						}
						ids[ev.ID] = ev.FamilyID
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			got, err := s.ListAudit(ctx, store.AuditFilter{UserID: "group-test", Limit: workers*each + 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != workers*each {
				t.Fatalf("%d events stored, want %d", len(got), workers*each)
			}
			for _, ev := range got {
				if ids[ev.ID] != ev.FamilyID {
					t.Fatalf("stored event %d is %q, append returned it for %q", ev.ID, ev.FamilyID, ids[ev.ID])
				}
			}

			// Appends racing Close.
			s2, err := s.Reopen(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var (
				ok   sync.Map
				wg2  sync.WaitGroup
				fail = make(chan error, workers)
			)
			for w := range workers {
				wg2.Go(func() {
					ev := &store.AuditEvent{Time: now, Type: "test.close", UserID: "close-test", FamilyID: fmt.Sprintf("c%d", w)}
					if err := s2.AppendAudit(ctx, ev); err != nil {
						if !errors.Is(err, store.ErrUnavailable) {
							fail <- err
						}
						return
					}
					ok.Store(ev.FamilyID, true)
				})
			}
			time.Sleep(time.Millisecond)
			s2.Close()
			done := make(chan struct{})
			go func() { wg2.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("appends hang after Close")
			}
			close(fail)
			for err := range fail {
				t.Errorf("append racing Close: %v, want success or ErrUnavailable", err)
			}
			stored, err := s.ListAudit(ctx, store.AuditFilter{UserID: "close-test", Limit: workers + 10})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			ok.Range(func(any, any) bool { n++; return true })
			if len(stored) != n {
				t.Errorf("%d appends succeeded during Close, %d stored", n, len(stored))
			}
			if err := s2.AppendAudit(ctx, &store.AuditEvent{Time: now, Type: "test.closed"}); !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("append after Close: %v, want ErrUnavailable", err)
			}
		})
	}
}
