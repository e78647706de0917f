package storetest

import (
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
)

func testSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	t0 := now()
	sess := &store.Session{
		ID:        newID("sess"),
		UserID:    newID("user"),
		AuthTime:  t0.Add(-time.Minute),
		AMR:       []string{"pwd", "otp"},
		ACR:       "urn:latchkey:mfa",
		CreatedAt: t0,
		ExpiresAt: t0.Add(time.Hour),
	}
	must(t, s.CreateSession(ctx, sess), "create")
	wantErr(t, s.CreateSession(ctx, sess), store.ErrConflict, "create with existing id")

	for _, tc := range []struct {
		name string
		at   time.Time
		want error
	}{
		{"at creation", t0, nil},
		{"just before expiry", sess.ExpiresAt.Add(-time.Millisecond), nil},
		{"at expiry", sess.ExpiresAt, store.ErrNotFound},
		{"after expiry", sess.ExpiresAt.Add(time.Hour), store.ErrNotFound},
	} {
		got, err := s.GetSession(ctx, sess.ID, tc.at)
		wantErr(t, err, tc.want, "get "+tc.name)
		if tc.want == nil {
			wantEqual(t, got, sess, "session "+tc.name)
		}
	}
	_, err := s.GetSession(ctx, newID("sess"), t0)
	wantErr(t, err, store.ErrNotFound, "get unknown")

	must(t, s.DeleteSession(ctx, sess.ID), "delete")
	_, err = s.GetSession(ctx, sess.ID, t0)
	wantErr(t, err, store.ErrNotFound, "get deleted")
	must(t, s.DeleteSession(ctx, sess.ID), "delete again")

	// DeleteUserSessions removes all of one user's sessions and no other's.
	other := *sess
	other.ID, other.UserID = newID("sess"), newID("user")
	must(t, s.CreateSession(ctx, &other), "create other user's session")
	var mineIDs []string
	for range 3 {
		mine := *sess
		mine.ID = newID("sess")
		must(t, s.CreateSession(ctx, &mine), "create")
		mineIDs = append(mineIDs, mine.ID)
	}
	must(t, s.DeleteUserSessions(ctx, sess.UserID), "delete user sessions")
	for _, id := range mineIDs {
		_, err = s.GetSession(ctx, id, t0)
		wantErr(t, err, store.ErrNotFound, "user's session after DeleteUserSessions")
	}
	_, err = s.GetSession(ctx, other.ID, t0)
	wantErr(t, err, nil, "other user's session survives")
}

func testAuthRequests(t *testing.T, s store.Store) {
	ctx := t.Context()
	t0 := now()
	full := &store.AuthRequest{
		ID:                  newID("req"),
		ClientID:            newID("client"),
		RedirectURI:         "https://app.example/cb?a=b",
		State:               "state with spaces & symbols ?",
		Nonce:               "n-0S6_WzA2Mj",
		CodeChallenge:       "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		CodeChallengeMethod: "S256",
		Scopes:              []string{"openid", "profile"},
		Prompt:              []string{"login", "consent"},
		MaxAge:              300,
		ACRValues:           []string{"urn:latchkey:mfa", "urn:latchkey:pwd"},
		DPoPJKT:             "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
		CreatedAt:           t0,
		ExpiresAt:           t0.Add(10 * time.Minute),
	}
	bare := &store.AuthRequest{ID: newID("req"), ClientID: newID("client"), MaxAge: -1,
		CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
	for _, tc := range []struct {
		name string
		r    *store.AuthRequest
	}{{"full", full}, {"bare", bare}} {
		must(t, s.CreateAuthRequest(ctx, tc.r), "create "+tc.name)
		got, err := s.GetAuthRequest(ctx, tc.r.ID, t0)
		must(t, err, "get "+tc.name)
		wantErr(t, s.CreateAuthRequest(ctx, tc.r), store.ErrConflict, "create "+tc.name+" again")
		wantEqual(t, got, tc.r, tc.name+" request round trip")
		_, err = s.GetAuthRequest(ctx, tc.r.ID, tc.r.ExpiresAt)
		wantErr(t, err, store.ErrNotFound, "get "+tc.name+" at expiry")
	}
	_, err := s.GetAuthRequest(ctx, newID("req"), t0)
	wantErr(t, err, store.ErrNotFound, "get unknown")
	must(t, s.DeleteAuthRequest(ctx, full.ID), "delete")
	_, err = s.GetAuthRequest(ctx, full.ID, t0)
	wantErr(t, err, store.ErrNotFound, "get deleted")
	must(t, s.DeleteAuthRequest(ctx, full.ID), "delete again")
	_, err = s.GetAuthRequest(ctx, bare.ID, t0)
	must(t, err, "other request survives a delete")
}

func newCode(t0 time.Time) *store.AuthCode {
	return &store.AuthCode{
		ID:            newID("code"),
		ClientID:      newID("client"),
		UserID:        newID("user"),
		RedirectURI:   "https://app.example/cb",
		Nonce:         "nonce",
		CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		Scopes:        []string{"openid", "offline_access"},
		AuthTime:      t0.Add(-time.Minute),
		AMR:           []string{"pwd"},
		ACR:           "urn:latchkey:pwd",
		FamilyID:      newID("fam"),
		DPoPJKT:       "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
		CreatedAt:     t0,
		ExpiresAt:     t0.Add(time.Minute),
	}
}

func testAuthCodes(t *testing.T, s store.Store) {
	ctx := t.Context()
	t0 := now()
	c := newCode(t0)
	must(t, s.CreateAuthCode(ctx, c), "create")
	wantErr(t, s.CreateAuthCode(ctx, c), store.ErrConflict, "create with existing id")

	redeemed := t0.Add(time.Second)
	got, err := s.RedeemAuthCode(ctx, c.ID, redeemed)
	must(t, err, "redeem")
	want := *c
	want.UsedAt = redeemed
	wantEqual(t, got, &want, "redeemed code")

	// A replay gets the record (to revoke what the first redemption
	// produced) and ErrAlreadyUsed; the first use time stands.
	got, err = s.RedeemAuthCode(ctx, c.ID, redeemed.Add(time.Second))
	wantErr(t, err, store.ErrAlreadyUsed, "redeem again")
	if got == nil {
		t.Fatal("redeem again: no record returned with ErrAlreadyUsed")
	}
	wantEqual(t, got, &want, "replayed code")

	got, err = s.RedeemAuthCode(ctx, newID("code"), t0)
	wantErr(t, err, store.ErrNotFound, "redeem unknown")
	if got != nil {
		t.Fatalf("redeem unknown: got record %+v", got)
	}

	// Expiry is the caller's check: an expired code is still burned.
	expired := newCode(t0.Add(-time.Hour))
	must(t, s.CreateAuthCode(ctx, expired), "create expired")
	_, err = s.RedeemAuthCode(ctx, expired.ID, t0)
	must(t, err, "redeem expired")
	_, err = s.RedeemAuthCode(ctx, expired.ID, t0)
	wantErr(t, err, store.ErrAlreadyUsed, "redeem expired again")
}

// testAuthCodeRace has Racers goroutines redeem one code at once, round
// after round: exactly one may get it, and every caller gets the record.
func testAuthCodeRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	raceRounds(t, "concurrent redeem", store.ErrAlreadyUsed, func(int) (func(int) error, func(int)) {
		t0 := now()
		c := newCode(t0)
		must(t, s.CreateAuthCode(ctx, c), "create")
		got := make([]*store.AuthCode, Racers)
		call := func(i int) error {
			var err error
			got[i], err = s.RedeemAuthCode(ctx, c.ID, t0.Add(time.Duration(i+1)*time.Millisecond))
			return err
		}
		check := func(w int) {
			want := *c
			want.UsedAt = t0.Add(time.Duration(w+1) * time.Millisecond)
			for _, g := range got {
				wantEqual(t, g, &want, "record returned to a redeemer")
			}
		}
		return call, check
	})
}
