package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
)

// testAuditAfter: ListAuditAfter walks the log in id order from a cursor.
func testAuditAfter(t *testing.T, s store.Store) {
	ctx := t.Context()
	t0 := now()
	user := newID("user")
	var evs []*store.AuditEvent
	for i := range 4 {
		e := &store.AuditEvent{Time: t0.Add(-time.Duration(i) * time.Second), Type: "after.test", UserID: user, Detail: fmt.Sprint(i)}
		must(t, s.AppendAudit(ctx, e), "append")
		evs = append(evs, e)
	}
	// Times go backwards; ids go forwards and decide the order.
	got, err := s.ListAuditAfter(ctx, evs[0].ID, 1000)
	must(t, err, "list after")
	var mine []*store.AuditEvent
	for i, e := range got {
		if e.ID <= evs[0].ID || (i > 0 && e.ID <= got[i-1].ID) {
			t.Fatalf("list after %d: ids out of order: %d after %d", evs[0].ID, e.ID, got[max(i-1, 0)].ID)
		}
		if e.UserID == user {
			mine = append(mine, e)
		}
	}
	if len(mine) != 3 {
		t.Fatalf("list after: got %d of our events, want 3", len(mine))
	}
	for i, e := range mine {
		wantEqual(t, e, evs[i+1], fmt.Sprintf("list after: event %d", i))
	}
	one, err := s.ListAuditAfter(ctx, evs[0].ID, 1)
	must(t, err, "list after with limit")
	if len(one) != 1 || one[0].ID <= evs[0].ID || one[0].ID > evs[1].ID {
		t.Fatalf("list after with limit 1: %+v", one)
	}
	last, err := s.ListAuditAfter(ctx, 1<<62, 10)
	must(t, err, "list after the end")
	if len(last) != 0 {
		t.Fatalf("list after the end: %d events", len(last))
	}
}

// testDeliveryCursor: one owner at a time holds a cursor's lease; only the
// holder moves it, never backwards; an expired lease can be taken over.
func testDeliveryCursor(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := &store.AuditEvent{Time: now(), Type: "cursor.test"}
	must(t, s.AppendAudit(ctx, first), "append")
	name, a, b := newID("cursor"), newID("owner"), newID("owner")
	t0, ttl := now(), 30*time.Second

	pos, held, err := s.ClaimCursor(ctx, name, a, t0, ttl)
	must(t, err, "claim new cursor")
	if !held || pos < first.ID {
		t.Fatalf("claim new cursor: pos %d held %v, want held at or after the newest event %d", pos, held, first.ID)
	}
	start := pos
	if p, held, err := s.ClaimCursor(ctx, name, b, t0.Add(time.Second), ttl); err != nil || held || p != start {
		t.Fatalf("claim of a held lease by another owner: pos %d held %v err %v", p, held, err)
	}
	if _, held, err := s.ClaimCursor(ctx, name, a, t0.Add(10*time.Second), ttl); err != nil || !held {
		t.Fatalf("renewal by the holder: held %v err %v", held, err)
	}
	must(t, s.AdvanceCursor(ctx, name, a, start+5, t0.Add(11*time.Second), ttl), "advance")
	must(t, s.AdvanceCursor(ctx, name, a, start+2, t0.Add(12*time.Second), ttl), "advance backwards")
	if p, _, _ := s.ClaimCursor(ctx, name, a, t0.Add(12*time.Second), ttl); p != start+5 {
		t.Fatalf("after advancing to %d and back to %d: position %d, want it never to move back", start+5, start+2, p)
	}
	wantErr(t, s.AdvanceCursor(ctx, name, b, start+9, t0.Add(13*time.Second), ttl), store.ErrConflict, "advance by a non-holder")

	// a's lease (renewed at t0+12s) ends at t0+42s: b takes over then.
	if _, held, err := s.ClaimCursor(ctx, name, b, t0.Add(41*time.Second), ttl); err != nil || held {
		t.Fatalf("claim before the lease ended: held %v err %v", held, err)
	}
	p, held, err := s.ClaimCursor(ctx, name, b, t0.Add(42*time.Second), ttl)
	if err != nil || !held || p != start+5 {
		t.Fatalf("claim of an expired lease: pos %d held %v err %v", p, held, err)
	}
	wantErr(t, s.AdvanceCursor(ctx, name, a, start+9, t0.Add(43*time.Second), ttl), store.ErrConflict, "advance by the former holder")
	if _, held, _ := s.ClaimCursor(ctx, name, a, t0.Add(43*time.Second), ttl); held {
		t.Fatal("the former holder took the lease back while it was held")
	}

	// A second cursor is independent and starts at the newest event.
	later := &store.AuditEvent{Time: now(), Type: "cursor.test"}
	must(t, s.AppendAudit(ctx, later), "append")
	p2, held, err := s.ClaimCursor(ctx, newID("cursor"), a, t0, ttl)
	if err != nil || !held || p2 < later.ID {
		t.Fatalf("second cursor: pos %d held %v err %v, want held at or after %d", p2, held, err, later.ID)
	}
}

var errNotHeld = errors.New("lease not held")

// testCursorClaimRace: of many owners claiming one cursor at once, exactly
// one gets the lease.
func testCursorClaimRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	raceRounds(t, "concurrent cursor claims", errNotHeld, func(int) (func(int) error, func(int)) {
		name, t0 := newID("cursor"), now()
		return func(i int) error {
			_, held, err := s.ClaimCursor(ctx, name, fmt.Sprintf("owner-%d", i), t0, time.Minute)
			if err == nil && !held {
				err = errNotHeld
			}
			return err
		}, nil
	})
}

// testCountLiveFamilies counts at a time far from every other test's
// families (whose expiries are near the wall clock), so only this test's
// families can be live then.
func testCountLiveFamilies(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
	client, user := newID("client"), newID("user")
	mk := func(edit func(f *store.Family)) *store.Family {
		f := newFamily(at, client, user)
		edit(f)
		must(t, s.CreateFamily(ctx, f), "create family")
		return f
	}
	live := mk(func(f *store.Family) {})
	mk(func(f *store.Family) { f.IdleExpiresAt = at })     // idle expiry reached
	mk(func(f *store.Family) { f.AbsoluteExpiresAt = at }) // absolute expiry reached
	mk(func(f *store.Family) {
		f.Offline, f.IdleExpiresAt, f.AbsoluteExpiresAt = false, time.Time{}, time.Time{}
	}) // no refresh token
	revoked := mk(func(f *store.Family) {})
	_, err := s.RevokeFamilies(ctx, store.FamilyFilter{ID: revoked.ID}, "revoked", at.Add(-time.Hour))
	must(t, err, "revoke")

	n, err := s.CountLiveFamilies(ctx, at)
	must(t, err, "count")
	if n != 1 {
		t.Fatalf("CountLiveFamilies = %d, want 1 (only %s)", n, live.ID)
	}
	if n, err := s.CountLiveFamilies(ctx, at.Add(-time.Minute)); err != nil || n != 3 {
		t.Fatalf("a minute earlier: CountLiveFamilies = %d, %v; want 3 (the expiries not reached yet)", n, err)
	}
	_, err = s.RevokeFamilies(ctx, store.FamilyFilter{ID: live.ID}, "revoked", at)
	must(t, err, "revoke live")
	if n, err := s.CountLiveFamilies(ctx, at); err != nil || n != 0 {
		t.Fatalf("after revoking: CountLiveFamilies = %d, %v; want 0", n, err)
	}
}
