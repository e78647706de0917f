package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
)

func testAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	t0 := now()
	user, client, fam := newID("user"), newID("client"), newID("fam")
	events := []*store.AuditEvent{
		{Time: t0, Type: "login.succeeded", UserID: user, Detail: "from 192.0.2.1"},
		{Time: t0.Add(time.Second), Type: "code.issued", UserID: user, ClientID: client},
		{Time: t0.Add(2 * time.Second), Type: "refresh.rotated", UserID: user, ClientID: client, FamilyID: fam},
		{Time: t0.Add(3 * time.Second), Type: "family.revoked", UserID: user, ClientID: client, FamilyID: fam, Reason: "reuse"},
		{Time: t0.Add(3 * time.Second), Type: "client.updated", ClientID: client, Detail: "same millisecond"},
		{Time: t0.Add(time.Minute), Type: "other.user", UserID: newID("user")},
	}
	ids := map[int64]bool{}
	for _, e := range events {
		must(t, s.AppendAudit(ctx, e), "append")
		if e.ID == 0 || ids[e.ID] {
			t.Fatalf("append: event got id %d, want a new non-zero id", e.ID)
		}
		ids[e.ID] = true
	}
	for _, tc := range []struct {
		name   string
		filter store.AuditFilter
		want   []int // indexes into events, newest first
	}{
		{"user", store.AuditFilter{UserID: user}, []int{3, 2, 1, 0}},
		// Equal times: the later append is the newer event.
		{"client", store.AuditFilter{ClientID: client}, []int{4, 3, 2, 1}},
		{"family", store.AuditFilter{FamilyID: fam}, []int{3, 2}},
		{"user and client", store.AuditFilter{UserID: user, ClientID: client}, []int{3, 2, 1}},
		{"user with limit", store.AuditFilter{UserID: user, Limit: 2}, []int{3, 2}},
		{"nobody", store.AuditFilter{UserID: newID("user")}, nil},
	} {
		got, err := s.ListAudit(ctx, tc.filter)
		must(t, err, "list "+tc.name)
		if len(got) != len(tc.want) {
			t.Fatalf("list %s: got %d events, want %d", tc.name, len(got), len(tc.want))
		}
		for i, w := range tc.want {
			wantEqual(t, got[i], events[w], fmt.Sprintf("list %s: event %d", tc.name, i))
		}
	}

	// No limit means 100.
	many := newID("user")
	for i := 0; i < 105; i++ {
		must(t, s.AppendAudit(ctx, &store.AuditEvent{Time: t0.Add(time.Duration(i) * time.Millisecond),
			Type: "login.failed", UserID: many}), "append many")
	}
	got, err := s.ListAudit(ctx, store.AuditFilter{UserID: many})
	must(t, err, "list many")
	if len(got) != 100 || !got[0].Time.Equal(t0.Add(104*time.Millisecond)) {
		t.Fatalf("list without limit: got %d events starting at %v, want the newest 100", len(got), got[0].Time)
	}
	all, err := s.ListAudit(ctx, store.AuditFilter{Limit: 1000})
	must(t, err, "list all")
	if len(all) < 111 {
		t.Fatalf("list all: got %d events, want at least 111", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].Time.After(all[i-1].Time) {
			t.Fatalf("list all: event %d (%v) is newer than event %d (%v)", i, all[i].Time, i-1, all[i-1].Time)
		}
	}
}

// testSweep fills every swept table with dead rows and a few live ones, all
// dated around 2001 so rows of concurrent tests on the same database are
// out of reach, sweeps in small batches until nothing is left to delete,
// and checks exactly the dead rows are gone.
func testSweep(t *testing.T, s store.Store) {
	ctx := t.Context()
	const (
		dead     = 25
		batch    = 10
		keepDead = 7 * 24 * time.Hour
		tables   = 7 // sessions, requests, codes, revoked tokens, throttles, used jtis, families
	)
	t0 := time.Date(2001, 6, 1, 12, 0, 0, 0, time.UTC)
	user, client := newID("user"), newID("client")

	type check struct {
		name  string
		alive func() bool
	}
	var gone, kept []check
	add := func(keep bool, c check) {
		if keep {
			kept = append(kept, c)
		} else {
			gone = append(gone, c)
		}
	}
	session := func(expires time.Time) {
		sess := &store.Session{ID: newID("sess"), UserID: user, CreatedAt: t0.Add(-time.Hour), ExpiresAt: expires}
		must(t, s.CreateSession(ctx, sess), "create session")
		add(expires.After(t0), check{"session", func() bool {
			_, err := s.GetSession(ctx, sess.ID, t0.Add(-time.Hour))
			return err == nil
		}})
	}
	request := func(expires time.Time) {
		r := &store.AuthRequest{ID: newID("req"), ClientID: client, MaxAge: -1, CreatedAt: t0.Add(-time.Hour), ExpiresAt: expires}
		must(t, s.CreateAuthRequest(ctx, r), "create auth request")
		add(expires.After(t0), check{"auth request", func() bool {
			_, err := s.GetAuthRequest(ctx, r.ID, t0.Add(-time.Hour))
			return err == nil
		}})
	}
	code := func(expires time.Time, used bool) {
		c := newCode(t0.Add(-time.Hour))
		c.ExpiresAt = expires
		must(t, s.CreateAuthCode(ctx, c), "create code")
		if used {
			_, err := s.RedeemAuthCode(ctx, c.ID, t0.Add(-time.Minute))
			must(t, err, "redeem code")
		}
		add(expires.After(t0), check{fmt.Sprintf("code (used %v)", used), func() bool {
			// A swept code is unknown; a kept used one is a replay.
			_, err := s.RedeemAuthCode(ctx, c.ID, t0)
			return err == nil || errors.Is(err, store.ErrAlreadyUsed)
		}})
	}
	token := func(expires time.Time) {
		jti := newID("jti")
		must(t, s.RevokeAccessToken(ctx, jti, expires), "revoke token")
		add(expires.After(t0), check{"revoked token", func() bool {
			ok, err := s.AccessTokenRevoked(ctx, jti)
			must(t, err, "check token")
			return ok
		}})
	}
	throttle := func(windowEnd time.Time) {
		key := newID("thr")
		_, _, err := s.HitThrottle(ctx, key, windowEnd.Add(-time.Hour), time.Hour)
		must(t, err, "hit throttle")
		add(windowEnd.After(t0), check{"throttle window", func() bool {
			n, _, err := s.GetThrottle(ctx, key, windowEnd.Add(-time.Minute))
			must(t, err, "get throttle")
			return n > 0
		}})
	}
	jti := func(expires time.Time) {
		key := newID("jti")
		must(t, s.UseJTI(ctx, key, expires, expires.Add(-time.Hour)), "use jti")
		add(expires.After(t0), check{"used jti", func() bool {
			// A swept jti can be used again (this records it anew, dated
			// 2001, for a later sweep); a kept one is a replay.
			return errors.Is(s.UseJTI(ctx, key, expires, expires.Add(-time.Minute)), store.ErrAlreadyUsed)
		}})
	}
	family := func(name string, keep bool, edit func(f *store.Family)) {
		f := newFamily(t0.Add(-60*24*time.Hour), client, user)
		f.IdleExpiresAt, f.AbsoluteExpiresAt = t0.Add(time.Hour), t0.Add(30*24*time.Hour)
		edit(f)
		must(t, s.CreateFamily(ctx, f), "create family")
		add(keep, check{"family " + name, func() bool {
			_, err := s.GetFamily(ctx, f.ID)
			return err == nil
		}})
	}
	past := t0.Add(-keepDead - time.Hour) // dead for longer than keepDead
	recent := t0.Add(-time.Hour)          // dead, but not for keepDead yet
	for i := 0; i < dead; i++ {
		at := t0.Add(-time.Duration(i) * time.Minute)
		session(at)
		request(at)
		code(at, i%2 == 0)
		token(at)
		throttle(at)
		jti(at)
		switch i % 4 {
		case 0:
			family("revoked long ago", false, func(f *store.Family) { f.RevokedAt, f.RevokeReason = past, "old" })
		case 1:
			family("idle expired long ago", false, func(f *store.Family) { f.IdleExpiresAt = past })
		case 2:
			family("absolute expired long ago", false, func(f *store.Family) { f.AbsoluteExpiresAt = past })
		case 3:
			family("online, old", false, func(f *store.Family) {
				f.Offline, f.IdleExpiresAt, f.AbsoluteExpiresAt = false, time.Time{}, time.Time{}
				f.CreatedAt = t0.Add(-keepDead - 25*time.Hour)
			})
		}
	}
	later := t0.Add(time.Hour)
	session(later)
	request(later)
	code(later, false)
	code(later, true)
	token(later)
	throttle(later)
	jti(later)
	family("live", true, func(*store.Family) {})
	family("revoked recently", true, func(f *store.Family) { f.RevokedAt, f.RevokeReason = recent, "new" })
	family("idle expired recently", true, func(f *store.Family) { f.IdleExpiresAt = recent })
	family("absolute expired recently", true, func(f *store.Family) { f.AbsoluteExpiresAt = recent })
	family("online, within a day of keepDead", true, func(f *store.Family) {
		f.Offline, f.IdleExpiresAt, f.AbsoluteExpiresAt = false, time.Time{}, time.Time{}
		f.CreatedAt = t0.Add(-keepDead - 23*time.Hour)
	})
	family("online, created long ago, used recently", false, func(f *store.Family) {
		f.Offline, f.IdleExpiresAt, f.AbsoluteExpiresAt = false, time.Time{}, time.Time{}
		f.CreatedAt, f.LastUsedAt = t0.Add(-keepDead-25*time.Hour), recent
	})

	for _, c := range append(slices.Clone(gone), kept...) {
		if !c.alive() {
			t.Fatalf("%s missing before sweeping", c.name)
		}
	}

	total, rounds := 0, 0
	for {
		n, err := s.Sweep(ctx, t0, keepDead, batch)
		must(t, err, "sweep")
		if n > batch*tables {
			t.Fatalf("sweep %d deleted %d rows, more than %d per table", rounds, n, batch)
		}
		if n == 0 {
			break
		}
		total += n
		rounds++
		if rounds > 100 {
			t.Fatal("sweep never finished")
		}
	}
	if total < len(gone) || rounds < (dead+batch-1)/batch {
		t.Fatalf("sweep deleted %d rows in %d rounds, want at least %d rows in at least %d rounds",
			total, rounds, len(gone), (dead+batch-1)/batch)
	}
	t.Logf("sweep deleted %d rows in %d rounds of batch %d", total, rounds, batch)
	for _, c := range gone {
		if c.alive() {
			t.Fatalf("%s survived the sweep", c.name)
		}
	}
	for _, c := range kept {
		if !c.alive() {
			t.Fatalf("%s was swept", c.name)
		}
	}

	// A family whose first idle expiry passed long ago but which was
	// refreshed since, moving its idle expiry on, is kept: rotations leave
	// the sweep's own bookkeeping alone (idle_sweep_at in sqlstore), so the
	// sweep must look at the family's current expiry before deleting it.
	refreshed := newFamily(t0.Add(-60*24*time.Hour), client, user)
	refreshed.IdleExpiresAt, refreshed.AbsoluteExpiresAt = past, t0.Add(30*24*time.Hour)
	must(t, s.CreateFamily(ctx, refreshed), "create family")
	must(t, s.RotateFamily(ctx, refreshed.ID, refreshed.Generation, recent, later), "rotate family")
	refreshedAlive := func() bool {
		_, err := s.GetFamily(ctx, refreshed.ID)
		return err == nil
	}
	_, err := s.Sweep(ctx, t0, keepDead, 1000)
	must(t, err, "sweep")
	if !refreshedAlive() {
		t.Fatal("a family refreshed after its first idle expiry was swept")
	}

	// Once its new idle expiry has passed by keepDead, the refreshed
	// family goes too.
	for rounds = 0; refreshedAlive(); rounds++ {
		if rounds > 100 {
			t.Fatal("the refreshed family outlived its idle expiry by keepDead")
		}
		_, err = s.Sweep(ctx, later.Add(keepDead+time.Minute), keepDead, batch)
		must(t, err, "sweep")
	}
}

func testMigrate(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := fullClient()
	must(t, s.CreateClient(ctx, c), "create")
	for i := 0; i < 2; i++ {
		must(t, s.Migrate(ctx), "migrate again")
	}
	must(t, s.Ping(ctx), "ping")
	got, err := s.GetClient(ctx, c.ID)
	must(t, err, "get after migrate")
	wantEqual(t, got, c, "client after migrate")
}

// testTwoHandles opens a second handle on the store's database, as a second
// process would: each sees the other's writes, migrating from both at once
// is safe, and the compare-and-swaps hold across them.
func testTwoHandles(t *testing.T, s1 store.Store) {
	ctx := t.Context()
	r, ok := s1.(Reopener)
	if !ok {
		t.Fatalf("%T does not implement storetest.Reopener", s1)
	}
	s2, err := r.Reopen(ctx)
	must(t, err, "reopen")
	t.Cleanup(func() { s2.Close() })

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = []store.Store{s1, s2}[i%2].Migrate(ctx)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		must(t, err, "concurrent migrate")
	}

	c := fullClient()
	must(t, s1.CreateClient(ctx, c), "create on 1")
	got, err := s2.GetClient(ctx, c.ID)
	must(t, err, "get on 2")
	wantEqual(t, got, c, "client seen by 2")
	u := fullUser()
	must(t, s2.CreateUser(ctx, u), "create on 2")
	gotU, err := s1.GetUserByUsername(ctx, u.Username)
	must(t, err, "get on 1")
	wantEqual(t, gotU, u, "user seen by 1")
	wantErr(t, s1.CreateUser(ctx, u), store.ErrConflict, "conflict across handles")

	_, err = s2.UpdateClient(ctx, c.ID, func(c *store.Client) error { c.Name = "from 2"; return nil })
	must(t, err, "update on 2")
	got, err = s1.GetClient(ctx, c.ID)
	must(t, err, "get on 1")
	if got.Name != "from 2" {
		t.Fatalf("update on 2 not seen by 1: name %q", got.Name)
	}

	handles := []store.Store{s1, s2}
	t0 := now()
	raceRounds(t, "redeem across handles", store.ErrAlreadyUsed, func(round int) (func(int) error, func(int)) {
		code := newCode(t0)
		must(t, handles[round%2].CreateAuthCode(ctx, code), "create code")
		return func(i int) error {
			_, err := handles[i%2].RedeemAuthCode(ctx, code.ID, t0)
			return err
		}, nil
	})
	f := newFamily(t0, c.ID, u.ID)
	must(t, s2.CreateFamily(ctx, f), "create family")
	raceRounds(t, "rotate across handles", store.ErrConflict, func(round int) (func(int) error, func(int)) {
		from := f.Generation + int64(round)
		return func(i int) error {
			return handles[i%2].RotateFamily(ctx, f.ID, from, t0, t0.Add(time.Hour))
		}, nil
	})
	cur, err := s1.GetFamily(ctx, f.ID)
	must(t, err, "get family")

	ids, err := s1.RevokeFamilies(ctx, store.FamilyFilter{UserID: u.ID}, "test", t0)
	must(t, err, "revoke on 1")
	if !slices.Equal(ids, []string{f.ID}) {
		t.Fatalf("revoke on 1: got %v", ids)
	}
	wantErr(t, s2.RotateFamily(ctx, f.ID, cur.Generation, t0, t0), store.ErrConflict, "rotate on 2 after revoke on 1")
}

// testPruneAudit prunes only events older than the cut-off. It uses times
// far in the past so suites sharing a database don't disturb each other.
func testPruneAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	user := newID("user")
	for i := range 5 {
		must(t, s.AppendAudit(ctx, &store.AuditEvent{Time: old.Add(time.Duration(i) * time.Hour), Type: "old.event", UserID: user}), "append old")
	}
	keep := &store.AuditEvent{Time: old.AddDate(1, 0, 0), Type: "kept.event", UserID: user}
	must(t, s.AppendAudit(ctx, keep), "append kept")
	total := 0
	for {
		n, err := s.PruneAudit(ctx, old.AddDate(0, 6, 0), 2)
		must(t, err, "prune")
		if n > 2 {
			t.Fatalf("pruned %d in a batch of 2", n)
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total < 5 {
		t.Fatalf("pruned %d old events, want at least 5", total)
	}
	evs, err := s.ListAudit(ctx, store.AuditFilter{UserID: user})
	must(t, err, "list")
	if len(evs) != 1 || evs[0].ID != keep.ID {
		t.Fatalf("after pruning: %d events left, want only the kept one", len(evs))
	}
}
