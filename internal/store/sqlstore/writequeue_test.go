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
			// On PostgreSQL the batches went out as pipelines (pipeline.go).
			if _, committed := s.Pipelines(); e.name == "postgres" && committed == 0 {
				t.Error("no batch was pipelined on PostgreSQL")
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

// TestWriteBatchFailsAlone: one batch of single-statement writes (on
// PostgreSQL: one pipeline) in which one write fails: the batch is replayed
// one write at a time, the failing write fails alone (here: a duplicate
// client id, store.ErrConflict), and every other write is stored with its
// outcome (audit ids, rotations matched or not).
func TestWriteBatchFailsAlone(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			s := e.open(t)
			now := time.Now().UTC().Truncate(time.Millisecond)
			dup := cacheTestClient("dup")
			if err := s.CreateClient(ctx, dup); err != nil {
				t.Fatal(err)
			}
			fam := &store.Family{ID: "batch-fam-" + dup.ID, ClientID: dup.ID, UserID: "u", Scopes: []string{"openid"}, Offline: true,
				Generation: 1, RotatedAt: now, AuthTime: now, CreatedAt: now, LastUsedAt: now,
				IdleExpiresAt: now.Add(time.Hour), AbsoluteExpiresAt: now.Add(time.Hour)}
			if err := s.CreateFamily(ctx, fam); err != nil {
				t.Fatal(err)
			}

			release := s.HoldWriter(ctx)
			const appends = 6
			var (
				wg                 sync.WaitGroup
				appendErrs         [appends]error
				events             [appends]*store.AuditEvent
				dupErr, rot1, rot2 error
				created            = cacheTestClient("fresh")
				createErr          error
				rotEv1, rotEv2     = &store.AuditEvent{Time: now, Type: "refresh.rotated", FamilyID: fam.ID}, &store.AuditEvent{Time: now, Type: "refresh.rotated", FamilyID: fam.ID}
			)
			for i := range appends {
				events[i] = &store.AuditEvent{Time: now, Type: "test.batch", UserID: "batch-" + dup.ID, FamilyID: fmt.Sprint(i)}
				wg.Go(func() { appendErrs[i] = s.AppendAudit(ctx, events[i]) })
			}
			wg.Go(func() { dupErr = s.CreateClient(ctx, dup) })
			wg.Go(func() { createErr = s.CreateClient(ctx, created) })
			wg.Go(func() { rot1 = s.RotateFamilyAudited(ctx, fam.ID, 1, now, now.Add(time.Hour), rotEv1) })
			for s.QueuedWrites() < appends+3 {
				time.Sleep(time.Millisecond)
			}
			// The second rotation from the same generation, queued last:
			// it must lose to the first, as two transactions would.
			wg.Go(func() { rot2 = s.RotateFamilyAudited(ctx, fam.ID, 1, now, now.Add(time.Hour), rotEv2) })
			for s.QueuedWrites() < appends+4 {
				time.Sleep(time.Millisecond)
			}
			release()
			wg.Wait()

			if !errors.Is(dupErr, store.ErrConflict) {
				t.Errorf("duplicate client: %v, want ErrConflict", dupErr)
			}
			if createErr != nil {
				t.Errorf("new client failed with the batch: %v", createErr)
			}
			if rot1 != nil || !errors.Is(rot2, store.ErrConflict) {
				t.Errorf("rotations from the same generation: %v and %v, want nil and ErrConflict", rot1, rot2)
			}
			if rotEv1.ID == 0 {
				t.Error("the winning rotation's audit event has no id")
			}
			for i, err := range appendErrs {
				if err != nil || events[i].ID == 0 {
					t.Errorf("append %d failed with the batch: %v (id %d)", i, err, events[i].ID)
				}
			}
			got, err := s.ListAudit(ctx, store.AuditFilter{UserID: "batch-" + dup.ID})
			if err != nil || len(got) != appends {
				t.Errorf("%d appended events stored (%v), want %d", len(got), err, appends)
			}
			rotated, err := s.ListAudit(ctx, store.AuditFilter{FamilyID: fam.ID})
			if err != nil || len(rotated) != 1 || rotated[0].ID != rotEv1.ID {
				t.Errorf("rotation events stored: %v (%v), want exactly the winner's", rotated, err)
			}
			if f, err := s.GetFamily(ctx, fam.ID); err != nil || f.Generation != 2 {
				t.Errorf("family after the batch: %+v %v, want generation 2", f, err)
			}
			if _, err := s.GetClient(ctx, created.ID); err != nil {
				t.Errorf("new client not stored: %v", err)
			}
			if tried, _ := s.Pipelines(); e.name == "postgres" && tried == 0 {
				t.Error("the batch was not sent as a pipeline on PostgreSQL")
			}
		})
	}
}
