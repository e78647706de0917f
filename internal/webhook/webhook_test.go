package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/testdb"
	"github.com/latchkey-dev/latchkey/internal/webhook"
)

var secret = []byte("webhook-secret-0123456789abcdefghijklmnop")

// receiver is an httptest endpoint that verifies every signature, fails
// the first `fail` attempts, and records what it accepted, in order.
type receiver struct {
	t        *testing.T
	srv      *httptest.Server
	fail     atomic.Int32
	attempts atomic.Int32
	inflight atomic.Int32 // requests being handled
	mu       sync.Mutex
	got      []operator.AuditView
	bad      []string
}

func newReceiver(t *testing.T, fail int) *receiver {
	r := &receiver{t: t}
	r.fail.Store(int32(fail))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.attempts.Add(1)
		r.inflight.Add(1)
		defer r.inflight.Add(-1)
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := webhook.Verify(secret, req.Header.Get(webhook.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
			r.bad = append(r.bad, err.Error())
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if req.Context().Err() != nil {
			return // the sender gave up on this request: it will not count it
		}
		if r.fail.Add(-1) >= 0 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		var ev operator.AuditView
		if err := json.Unmarshal(body, &ev); err != nil {
			r.bad = append(r.bad, err.Error())
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		if req.Header.Get(webhook.EventIDHeader) != strconv.FormatInt(ev.ID, 10) || req.Header.Get(webhook.EventTypeHeader) != ev.Type {
			r.bad = append(r.bad, "headers do not match the body")
		}
		r.got = append(r.got, ev)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) events() []operator.AuditView {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// waitFor waits until every id in want was received.
func (r *receiver) waitFor(want []int64) {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		seen := map[int64]bool{}
		for _, e := range r.events() {
			seen[e.ID] = true
		}
		all := true
		for _, id := range want {
			all = all && seen[id]
		}
		if all {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.t.Fatalf("receiver got %d events, want ids %v", len(r.events()), want)
}

type counters struct{ delivered, failed, dropped, leaseOn atomic.Int32 }

func (c *counters) WebhookDelivered() { c.delivered.Add(1) }
func (c *counters) WebhookFailed()    { c.failed.Add(1) }
func (c *counters) WebhookDropped()   { c.dropped.Add(1) }
func (c *counters) WebhookLease(held bool) {
	if held {
		c.leaseOn.Store(1)
	} else {
		c.leaseOn.Store(0)
	}
}

func newWorker(st store.Store, url, owner string, m webhook.Recorder) *webhook.Worker {
	return &webhook.Worker{Store: st, URL: url, Secret: secret, Owner: owner, Metrics: m, Log: slog.New(slog.DiscardHandler),
		Poll: 20 * time.Millisecond, LeaseTTL: 500 * time.Millisecond, Backoff: 5 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
		GapWait: 50 * time.Millisecond}
}

// run starts w.Run; the returned stop waits for it to return.
func run(t *testing.T, w *webhook.Worker) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// audit writes n events through a family.Service that nudges w, as the
// server does, and returns their ids.
func audit(t *testing.T, st store.Store, w *webhook.Worker, n int, tag string) []int64 {
	fam := &family.Service{Store: st, Log: slog.New(slog.DiscardHandler), Now: time.Now}
	if w != nil {
		fam.Observe = w.Notify
	}
	var ids []int64
	for i := range n {
		ev := &store.AuditEvent{Type: family.EventRotated, UserID: "u-" + tag, ClientID: "c", FamilyID: fmt.Sprintf("f-%s-%d", tag, i)}
		fam.Audit(context.Background(), ev)
		if ev.ID == 0 {
			t.Fatal("audit event not stored")
		}
		ids = append(ids, ev.ID)
	}
	return ids
}

func checkInOrder(t *testing.T, got []operator.AuditView) {
	t.Helper()
	for i := 1; i < len(got); i++ {
		if got[i].ID < got[i-1].ID {
			t.Fatalf("out of order: event %d delivered after %d", got[i].ID, got[i-1].ID)
		}
	}
}

func TestDeliveryRetriesSignsAndKeepsOrder(t *testing.T) {
	st := testdb.SQLite(t)
	rcv := newReceiver(t, 3) // the first three attempts fail
	m := &counters{}
	w := newWorker(st, rcv.srv.URL, "a", m)
	// Written before Init: not delivered (the cursor starts at the newest event).
	audit(t, st, nil, 2, "before")
	if err := w.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	run(t, w)
	ids := audit(t, st, w, 15, "x")
	rcv.waitFor(ids)
	got := rcv.events()
	checkInOrder(t, got)
	if len(got) != len(ids) {
		t.Errorf("received %d events, want exactly %d (no failure after acceptance, so no duplicates)", len(got), len(ids))
	}
	for i, e := range got {
		if e.ID != ids[i] || e.Type != family.EventRotated || e.FamilyID != fmt.Sprintf("f-x-%d", i) || e.Time == "" {
			t.Errorf("event %d: %+v", i, e)
		}
	}
	if n := rcv.attempts.Load(); n != int32(len(ids)+3) {
		t.Errorf("%d attempts, want %d (3 failures retried)", n, len(ids)+3)
	}
	// The receiver has every event; the worker counts a delivery only after
	// it reads the response, so wait (bounded) for the last count.
	for deadline := time.Now().Add(10 * time.Second); m.delivered.Load() < int32(len(ids)) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if m.failed.Load() != 3 || m.delivered.Load() != int32(len(ids)) || m.leaseOn.Load() != 1 {
		t.Errorf("metrics: failed %d delivered %d lease %d", m.failed.Load(), m.delivered.Load(), m.leaseOn.Load())
	}
	if len(rcv.bad) > 0 {
		t.Errorf("receiver rejected: %v", rcv.bad)
	}
}

// TestResumeAfterRestart: events written while no worker runs, and an event
// being retried when the worker stops, are delivered by the next one.
func TestResumeAfterRestart(t *testing.T) {
	st := testdb.SQLite(t)
	rcv := newReceiver(t, 0)
	w1 := newWorker(st, rcv.srv.URL, "first", nil)
	if err := w1.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop := run(t, w1)
	first := audit(t, st, w1, 5, "one")
	rcv.waitFor(first)
	rcv.fail.Store(1 << 20) // the receiver goes down
	down := audit(t, st, w1, 1, "down")
	for rcv.attempts.Load() < int32(len(first)+2) {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	// A request the stopped worker abandoned may still be in the receiver's
	// handler; let it finish (refused) before the receiver comes back up,
	// or it would be accepted with nobody to record the delivery.
	for deadline := time.Now().Add(10 * time.Second); rcv.inflight.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	offline := audit(t, st, nil, 4, "offline")
	rcv.fail.Store(0)

	// A new instance: it waits for the old lease to end, then resumes.
	w2 := newWorker(st, rcv.srv.URL, "second", nil)
	if err := w2.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	run(t, w2)
	want := append(append(slices.Clone(first), down...), offline...)
	rcv.waitFor(want)
	got := rcv.events()
	checkInOrder(t, got)
	if len(got) != len(want) {
		t.Errorf("received %d events, want %d", len(got), len(want))
	}
}

// TestOneInstanceDelivers: two workers on one database (two server
// instances) deliver every event once between them, in order.
func TestOneInstanceDelivers(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			var st store.Store
			if engine == "postgres" {
				st = testdb.Postgres(t)
			} else {
				st = testdb.SQLite(t)
			}
			rcv := newReceiver(t, 0)
			a, b := newWorker(st, rcv.srv.URL, "a", nil), newWorker(st, rcv.srv.URL, "b", nil)
			for _, w := range []*webhook.Worker{a, b} {
				if err := w.Init(context.Background()); err != nil {
					t.Fatal(err)
				}
				run(t, w)
			}
			var ids []int64
			var mu sync.Mutex
			var wg sync.WaitGroup
			for i := range 4 { // concurrent writers, nudging both workers
				wg.Go(func() {
					w := a
					if i%2 == 1 {
						w = b
					}
					got := audit(t, st, w, 10, fmt.Sprint(i))
					mu.Lock()
					ids = append(ids, got...)
					mu.Unlock()
				})
			}
			wg.Wait()
			rcv.waitFor(ids)
			got := rcv.events()
			checkInOrder(t, got)
			if len(got) != len(ids) {
				t.Errorf("received %d events, want each of %d once", len(got), len(ids))
			}
		})
	}
}

func TestNotifyNeverBlocks(t *testing.T) {
	st := testdb.SQLite(t)
	m := &counters{}
	w := newWorker(st, "http://127.0.0.1:1/", "a", m)
	w.QueueSize = 2
	if err := w.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	// No Run: nothing drains the queue.
	for i := range 5 {
		w.Notify(&store.AuditEvent{ID: int64(i + 1)})
	}
	if m.dropped.Load() != 3 {
		t.Errorf("dropped %d nudges, want 3", m.dropped.Load())
	}
}

func TestSignature(t *testing.T) {
	body := []byte(`{"id":1}`)
	now := time.Unix(1_800_000_000, 0)
	h := webhook.Sign(secret, now, body)
	if h != "t=1800000000,v1="+hmacHex(t, "1800000000", body) {
		t.Fatalf("Sign = %q", h)
	}
	if err := webhook.Verify(secret, h, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Errorf("Verify: %v", err)
	}
	for name, tc := range map[string]struct {
		header string
		body   []byte
		at     time.Time
	}{
		"other body":   {h, []byte(`{"id":2}`), now},
		"too old":      {h, body, now.Add(6 * time.Minute)},
		"no signature": {"t=1800000000", body, now},
		"garbage":      {"v1=zz", body, now},
	} {
		if err := webhook.Verify(secret, tc.header, tc.body, tc.at, 5*time.Minute); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	if err := webhook.Verify([]byte("another secret"), h, body, now, time.Minute); err == nil {
		t.Error("verified with another secret")
	}
}
