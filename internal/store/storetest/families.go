package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
)

// newFamily returns a live offline family with every field set.
func newFamily(t0 time.Time, clientID, userID string) *store.Family {
	return &store.Family{
		ID:                newID("fam"),
		ClientID:          clientID,
		UserID:            userID,
		Scopes:            []string{"openid", "offline_access"},
		Offline:           true,
		Generation:        5,
		RotatedAt:         t0.Add(-time.Minute),
		AuthTime:          t0.Add(-time.Hour),
		AMR:               []string{"pwd", "hwk"},
		ACR:               "urn:latchkey:mfa",
		PolicyVersion:     2,
		CredentialEpoch:   4,
		DPoPJKT:           "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
		CreatedAt:         t0.Add(-time.Hour),
		LastUsedAt:        t0.Add(-time.Minute),
		IdleExpiresAt:     t0.Add(24 * time.Hour),
		AbsoluteExpiresAt: t0.Add(30 * 24 * time.Hour),
	}
}

func testFamilies(t *testing.T, s store.Store) {
	ctx := t.Context()
	t0 := now()
	f := newFamily(t0, newID("client"), newID("user"))
	must(t, s.CreateFamily(ctx, f), "create")
	wantErr(t, s.CreateFamily(ctx, f), store.ErrConflict, "create with existing id")
	got, err := s.GetFamily(ctx, f.ID)
	must(t, err, "get")
	wantEqual(t, got, f, "family round trip")

	revoked := newFamily(t0, newID("client"), newID("user"))
	revoked.Offline, revoked.IdleExpiresAt, revoked.AbsoluteExpiresAt = false, time.Time{}, time.Time{}
	revoked.RevokedAt, revoked.RevokeReason = t0, "created revoked"
	must(t, s.CreateFamily(ctx, revoked), "create revoked")
	got, err = s.GetFamily(ctx, revoked.ID)
	must(t, err, "get revoked")
	wantEqual(t, got, revoked, "revoked family round trip")
	_, err = s.GetFamily(ctx, newID("fam"))
	wantErr(t, err, store.ErrNotFound, "get unknown")

	// Rotation is a compare-and-swap on the generation.
	t1, idle := t0.Add(time.Second), t0.Add(48*time.Hour)
	must(t, s.RotateFamily(ctx, f.ID, 5, t1, idle), "rotate")
	want := *f
	want.Generation, want.RotatedAt, want.LastUsedAt, want.IdleExpiresAt = 6, t1, t1, idle
	got, err = s.GetFamily(ctx, f.ID)
	must(t, err, "get after rotate")
	wantEqual(t, got, &want, "family after rotate")
	for _, tc := range []struct {
		name string
		id   string
		from int64
		want error
	}{
		{"from the old generation", f.ID, 5, store.ErrConflict},
		{"from a future generation", f.ID, 7, store.ErrConflict},
		{"a revoked family", revoked.ID, 5, store.ErrConflict},
		{"an unknown family", newID("fam"), 0, store.ErrNotFound},
	} {
		wantErr(t, s.RotateFamily(ctx, tc.id, tc.from, t1, idle), tc.want, "rotate "+tc.name)
	}
	got, err = s.GetFamily(ctx, f.ID)
	must(t, err, "get after failed rotations")
	wantEqual(t, got, &want, "family after failed rotations")

	t2 := t1.Add(time.Second)
	must(t, s.TouchFamily(ctx, f.ID, t2), "touch")
	want.LastUsedAt = t2
	got, err = s.GetFamily(ctx, f.ID)
	must(t, err, "get after touch")
	wantEqual(t, got, &want, "family after touch")
	wantErr(t, s.TouchFamily(ctx, newID("fam"), t2), store.ErrNotFound, "touch unknown")

	// Revocation ends rotation.
	ids, err := s.RevokeFamilies(ctx, store.FamilyFilter{ID: f.ID}, "test", t2)
	must(t, err, "revoke")
	if !slices.Equal(ids, []string{f.ID}) {
		t.Fatalf("revoke: got ids %v, want [%s]", ids, f.ID)
	}
	wantErr(t, s.RotateFamily(ctx, f.ID, 6, t2, idle), store.ErrConflict, "rotate after revoke")
}

// testFamilyWithUser: the family and its user in one read, as two reads
// would give them.
func testFamilyWithUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	t0 := now()
	u := fullUser()
	must(t, s.CreateUser(ctx, u), "create user")
	f := newFamily(t0, newID("client"), u.ID)
	must(t, s.CreateFamily(ctx, f), "create family")
	gotF, gotU, err := s.GetFamilyWithUser(ctx, f.ID)
	must(t, err, "get with user")
	wantEqual(t, gotF, f, "family read with its user")
	wantEqual(t, gotU, u, "user read with its family")

	// What it reads is current: a rotation and a user change show.
	must(t, s.RotateFamily(ctx, f.ID, f.Generation, t0.Add(time.Second), t0.Add(time.Hour)), "rotate")
	_, err = s.UpdateUser(ctx, u.ID, func(u *store.User) error { u.Disabled = true; u.CredentialEpoch++; return nil })
	must(t, err, "update user")
	gotF, gotU, err = s.GetFamilyWithUser(ctx, f.ID)
	must(t, err, "get with user after changes")
	if gotF.Generation != f.Generation+1 || !gotU.Disabled || gotU.CredentialEpoch != u.CredentialEpoch+1 {
		t.Fatalf("after changes: generation %d, disabled %v, epoch %d", gotF.Generation, gotU.Disabled, gotU.CredentialEpoch)
	}

	// A family whose user is gone comes back without a user.
	orphan := newFamily(t0, newID("client"), newID("user"))
	must(t, s.CreateFamily(ctx, orphan), "create orphan")
	gotF, gotU, err = s.GetFamilyWithUser(ctx, orphan.ID)
	must(t, err, "get orphan")
	wantEqual(t, gotF, orphan, "orphan family")
	if gotU != nil {
		t.Fatalf("orphan family: got user %+v, want none", gotU)
	}

	_, _, err = s.GetFamilyWithUser(ctx, newID("fam"))
	wantErr(t, err, store.ErrNotFound, "get unknown with user")
}

// testFamilyRotateRace has Racers goroutines rotate one family from the
// same generation at once, round after round: exactly one may succeed.
func testFamilyRotateRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	f := newFamily(now(), newID("client"), newID("user"))
	must(t, s.CreateFamily(ctx, f), "create")
	raceRounds(t, "concurrent rotate", store.ErrConflict, func(round int) (func(int) error, func(int)) {
		from := f.Generation + int64(round)
		t0 := now()
		call := func(i int) error {
			return s.RotateFamily(ctx, f.ID, from, t0.Add(time.Duration(i)*time.Millisecond), t0.Add(time.Hour))
		}
		check := func(w int) {
			got, err := s.GetFamily(ctx, f.ID)
			must(t, err, "get after race")
			if got.Generation != from+1 || !got.RotatedAt.Equal(t0.Add(time.Duration(w)*time.Millisecond)) {
				t.Fatalf("after race: generation %d rotated at %v, want %d at the winner's %v",
					got.Generation, got.RotatedAt, from+1, t0.Add(time.Duration(w)*time.Millisecond))
			}
		}
		return call, check
	})
}

// testFamilyRotateAuditedRace races RotateFamilyAudited: exactly one
// caller rotates each round, and exactly that caller's audit event is
// stored (with its id set); the losers store nothing.
func testFamilyRotateAuditedRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	f := newFamily(now(), newID("client"), newID("user"))
	must(t, s.CreateFamily(ctx, f), "create")
	stored := 0
	raceRounds(t, "concurrent audited rotate", store.ErrConflict, func(round int) (func(int) error, func(int)) {
		from := f.Generation + int64(round)
		t0 := now()
		evs := make([]*store.AuditEvent, Racers)
		for i := range evs {
			evs[i] = &store.AuditEvent{Time: t0, Type: "refresh.rotated", UserID: f.UserID, ClientID: f.ClientID, FamilyID: f.ID, Detail: fmt.Sprintf("round %d caller %d", round, i)}
		}
		call := func(i int) error {
			return s.RotateFamilyAudited(ctx, f.ID, from, t0, t0.Add(time.Hour), evs[i])
		}
		check := func(w int) {
			got, err := s.GetFamily(ctx, f.ID)
			must(t, err, "get after race")
			if got.Generation != from+1 {
				t.Fatalf("after race: generation %d, want %d", got.Generation, from+1)
			}
			if evs[w].ID == 0 {
				t.Fatalf("round %d: the winner's event has no id", round)
			}
			stored++
			list, err := s.ListAudit(ctx, store.AuditFilter{FamilyID: f.ID, Limit: 10 * MaxRaceRounds})
			must(t, err, "list audit")
			if len(list) != stored {
				t.Fatalf("round %d: %d events stored for the family, want %d (one per round)", round, len(list), stored)
			}
			if list[0].ID != evs[w].ID || list[0].Detail != evs[w].Detail {
				t.Fatalf("round %d: newest event %d %q, want the winner's %d %q", round, list[0].ID, list[0].Detail, evs[w].ID, evs[w].Detail)
			}
		}
		return call, check
	})
	// A rotation that does not match stores no event.
	ev := &store.AuditEvent{Time: now(), Type: "refresh.rotated", FamilyID: f.ID}
	wantErr(t, s.RotateFamilyAudited(ctx, f.ID, 0, now(), now(), ev), store.ErrConflict, "stale audited rotate")
	wantErr(t, s.RotateFamilyAudited(ctx, newID("fam"), 0, now(), now(), ev), store.ErrNotFound, "unknown audited rotate")
	if list, _ := s.ListAudit(ctx, store.AuditFilter{FamilyID: f.ID, Limit: 10 * MaxRaceRounds}); len(list) != stored || ev.ID != 0 {
		t.Fatalf("refused audited rotations stored an event: %d events (want %d), id %d", len(list), stored, ev.ID)
	}
}

func testRevokeFamilies(t *testing.T, s store.Store) {
	ctx := t.Context()
	t0 := now()
	alice, bob := newID("alice"), newID("bob")
	app, tool := newID("app"), newID("tool")
	aliceApp1 := newFamily(t0, app, alice)
	aliceApp2 := newFamily(t0.Add(time.Millisecond), app, alice)
	aliceTool := newFamily(t0.Add(2*time.Millisecond), tool, alice)
	bobApp := newFamily(t0.Add(3*time.Millisecond), app, bob)
	bobTool := newFamily(t0.Add(4*time.Millisecond), tool, bob)
	for _, f := range []*store.Family{aliceApp1, aliceApp2, aliceTool, bobApp, bobTool} {
		must(t, s.CreateFamily(ctx, f), "create")
	}
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }

	for _, f := range []store.FamilyFilter{{}, {LiveOnly: true}} {
		_, err := s.RevokeFamilies(ctx, f, "everything", t0)
		if err == nil {
			t.Fatalf("revoke with filter %+v: no error; an empty filter must be rejected", f)
		}
	}
	for _, f := range []*store.Family{aliceApp1, bobTool} {
		got, err := s.GetFamily(ctx, f.ID)
		must(t, err, "get after rejected revokes")
		if !got.RevokedAt.IsZero() {
			t.Fatal("a rejected revoke revoked a family")
		}
	}

	t1, t2, t3 := t0.Add(time.Second), t0.Add(2*time.Second), t0.Add(3*time.Second)
	steps := []struct {
		name   string
		filter store.FamilyFilter
		reason string
		at     time.Time
		want   []string
	}{
		{"by id", store.FamilyFilter{ID: aliceApp1.ID}, "logout", t1, []string{aliceApp1.ID}},
		{"by id again", store.FamilyFilter{ID: aliceApp1.ID}, "again", t2, nil},
		{"by user", store.FamilyFilter{UserID: alice}, "password changed", t2, sorted(aliceApp2.ID, aliceTool.ID)},
		{"by client", store.FamilyFilter{ClientID: app}, "client disabled", t3, []string{bobApp.ID}},
		{"by user and client", store.FamilyFilter{UserID: bob, ClientID: tool}, "consent withdrawn", t3, []string{bobTool.ID}},
		{"nothing left", store.FamilyFilter{ClientID: tool}, "again", t3, nil},
		{"unknown user", store.FamilyFilter{UserID: newID("nobody")}, "none", t3, nil},
	}
	for _, st := range steps {
		ids, err := s.RevokeFamilies(ctx, st.filter, st.reason, st.at)
		must(t, err, "revoke "+st.name)
		if !slices.Equal(sorted(ids...), st.want) {
			t.Fatalf("revoke %s: got %v, want %v", st.name, ids, st.want)
		}
	}
	// Each family keeps the time and reason of its first revocation.
	for _, tc := range []struct {
		f      *store.Family
		reason string
		at     time.Time
	}{
		{aliceApp1, "logout", t1},
		{aliceApp2, "password changed", t2},
		{aliceTool, "password changed", t2},
		{bobApp, "client disabled", t3},
		{bobTool, "consent withdrawn", t3},
	} {
		got, err := s.GetFamily(ctx, tc.f.ID)
		must(t, err, "get revoked")
		want := *tc.f
		want.RevokedAt, want.RevokeReason = tc.at, tc.reason
		wantEqual(t, got, &want, "revoked family")
	}

	// ListFamilies filters, and LiveOnly hides revoked families.
	live := newFamily(t0.Add(5*time.Millisecond), app, alice)
	must(t, s.CreateFamily(ctx, live), "create live")
	for _, tc := range []struct {
		name   string
		filter store.FamilyFilter
		want   []string
	}{
		{"user", store.FamilyFilter{UserID: alice}, sorted(aliceApp1.ID, aliceApp2.ID, aliceTool.ID, live.ID)},
		{"user live", store.FamilyFilter{UserID: alice, LiveOnly: true}, []string{live.ID}},
		{"client", store.FamilyFilter{ClientID: tool}, sorted(aliceTool.ID, bobTool.ID)},
		{"client live", store.FamilyFilter{ClientID: tool, LiveOnly: true}, nil},
		{"user and client", store.FamilyFilter{UserID: alice, ClientID: app}, sorted(aliceApp1.ID, aliceApp2.ID, live.ID)},
		{"id", store.FamilyFilter{ID: bobApp.ID}, []string{bobApp.ID}},
		{"unknown", store.FamilyFilter{UserID: newID("nobody")}, nil},
	} {
		list, err := s.ListFamilies(ctx, tc.filter)
		must(t, err, "list "+tc.name)
		var ids []string
		for _, f := range list {
			ids = append(ids, f.ID)
			if f.ID == live.ID {
				wantEqual(t, f, live, "listed family")
			}
		}
		if !slices.Equal(sorted(ids...), tc.want) {
			t.Fatalf("list %s: got %v, want %v", tc.name, ids, tc.want)
		}
	}
	all, err := s.ListFamilies(ctx, store.FamilyFilter{})
	must(t, err, "list all")
	if len(all) < 6 {
		t.Fatalf("list all: got %d families, want at least 6", len(all))
	}
}

func testAccessTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	jti, other := newID("jti"), newID("jti")
	revoked, err := s.AccessTokenRevoked(ctx, jti)
	must(t, err, "check before revoke")
	if revoked {
		t.Fatal("unknown jti reported revoked")
	}
	exp := now().Add(time.Hour)
	must(t, s.RevokeAccessToken(ctx, jti, exp), "revoke")
	must(t, s.RevokeAccessToken(ctx, jti, exp), "revoke again")
	for _, tc := range []struct {
		jti  string
		want bool
	}{{jti, true}, {other, false}} {
		got, err := s.AccessTokenRevoked(ctx, tc.jti)
		must(t, err, "check")
		if got != tc.want {
			t.Fatalf("AccessTokenRevoked(%s) = %v, want %v", tc.jti, got, tc.want)
		}
	}

	// GetAccessTokenState: family, user and revocation in one read, for a
	// family with its user and for an orphan family, revoked or not.
	u := fullUser()
	must(t, s.CreateUser(ctx, u), "create user")
	f := newFamily(now(), newID("client"), u.ID)
	must(t, s.CreateFamily(ctx, f), "create family")
	orphan := newFamily(now(), newID("client"), newID("user"))
	must(t, s.CreateFamily(ctx, orphan), "create orphan")
	for _, tc := range []struct {
		fam     *store.Family
		user    *store.User
		jti     string
		revoked bool
	}{{f, u, jti, true}, {f, u, other, false}, {orphan, nil, jti, true}, {orphan, nil, other, false}} {
		gotF, gotU, gotRevoked, err := s.GetAccessTokenState(ctx, tc.fam.ID, tc.jti)
		must(t, err, "access token state")
		wantEqual(t, gotF, tc.fam, "family of the access token state")
		if tc.user == nil && gotU != nil {
			t.Fatalf("orphan family: got user %+v", gotU)
		}
		if tc.user != nil {
			wantEqual(t, gotU, tc.user, "user of the access token state")
		}
		if gotRevoked != tc.revoked {
			t.Fatalf("GetAccessTokenState(%s, %s): revoked %v, want %v", tc.fam.ID, tc.jti, gotRevoked, tc.revoked)
		}
	}
	_, _, _, err = s.GetAccessTokenState(ctx, newID("fam"), jti)
	wantErr(t, err, store.ErrNotFound, "access token state of an unknown family")
}
