package storetest

import (
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
)

// testUsedJTIs: a jti is accepted once until its record expires, then
// again; keys are independent; a record must expire after now.
func testUsedJTIs(t *testing.T, s store.Store) {
	ctx := t.Context()
	t0 := now()
	key := newID("jti")
	must(t, s.UseJTI(ctx, key, t0.Add(time.Minute), t0), "first use")
	wantErr(t, s.UseJTI(ctx, key, t0.Add(time.Minute), t0), store.ErrAlreadyUsed, "replay")
	wantErr(t, s.UseJTI(ctx, key, t0.Add(2*time.Minute), t0.Add(59*time.Second)), store.ErrAlreadyUsed, "replay before expiry")
	// A replay does not extend the record.
	must(t, s.UseJTI(ctx, key, t0.Add(3*time.Minute), t0.Add(time.Minute)), "use at expiry")
	wantErr(t, s.UseJTI(ctx, key, t0.Add(4*time.Minute), t0.Add(2*time.Minute)), store.ErrAlreadyUsed, "replay of the renewed record")
	must(t, s.UseJTI(ctx, newID("jti"), t0.Add(time.Minute), t0), "another key")
	if err := s.UseJTI(ctx, newID("jti"), t0, t0); err == nil {
		t.Fatal("UseJTI accepted an expiry that is not after now")
	}
}

// testUsedJTIRace: of many concurrent uses of one jti, exactly one wins.
func testUsedJTIRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	raceRounds(t, "concurrent jti use", store.ErrAlreadyUsed, func(int) (func(int) error, func(int)) {
		key, t0 := newID("jti"), now()
		return func(int) error { return s.UseJTI(ctx, key, t0.Add(time.Minute), t0) }, nil
	})
}
