// Package storetest is the conformance suite every store.Store backend
// passes. A backend's test calls Run with a function returning a fresh,
// migrated store.
//
// The suite only ever uses records with random ids (and, for the sweep test,
// timestamps in 2001, far from the wall-clock times the other tests use), so
// suites and other tests may share one database. Areas run as parallel
// subtests, each on its own store from newStore.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
)

// Reopener is implemented by stores that can open a second, independent
// handle (own connections) on their database, as another process would.
// The suite needs it to check that handles see each other's writes and
// that compare-and-swaps hold across them.
type Reopener interface {
	Reopen(ctx context.Context) (store.Store, error)
}

// Concurrency tests start Racers goroutines at once, for at least
// RaceRounds rounds and until MinRacedRounds rounds really overlapped (see
// raceRounds), but no more than MaxRaceRounds.
const (
	Racers         = 32
	RaceRounds     = 5
	MinRacedRounds = 2
	MaxRaceRounds  = 200
)

// Run runs the conformance suite. newStore must return a migrated store
// that the suite may write to; it is called once per area, from that
// area's subtest, and should arrange its own cleanup.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	areas := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Clients", testClients},
		{"Users", testUsers},
		{"Sessions", testSessions},
		{"AuthRequests", testAuthRequests},
		{"AuthCodes", testAuthCodes},
		{"AuthCodeRace", testAuthCodeRace},
		{"Consents", testConsents},
		{"Families", testFamilies},
		{"FamilyRotateRace", testFamilyRotateRace},
		{"FamilyRotateAuditedRace", testFamilyRotateAuditedRace},
		{"RevokeFamilies", testRevokeFamilies},
		{"AccessTokens", testAccessTokens},
		{"SigningKeys", testSigningKeys},
		{"Audit", testAudit},
		{"PruneAudit", testPruneAudit},
		{"AuditAfter", testAuditAfter},
		{"DeliveryCursor", testDeliveryCursor},
		{"CursorClaimRace", testCursorClaimRace},
		{"CountLiveFamilies", testCountLiveFamilies},
		{"Throttle", testThrottle},
		{"UsedJTIs", testUsedJTIs},
		{"UsedJTIRace", testUsedJTIRace},
		{"Sweep", testSweep},
		{"Migrate", testMigrate},
		{"TwoHandles", testTwoHandles},
		{"FamilyWithUser", testFamilyWithUser},
	}
	for _, a := range areas {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			a.fn(t, newStore(t))
		})
	}
}

// newID returns a random id with a readable prefix.
func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// zone is a non-UTC location for inputs, so the suite checks that stores
// return UTC whatever they were given.
var zone = time.FixedZone("UTC+5:30", 5*3600+1800)

// now is the current time at millisecond precision, in zone: callers
// truncate to milliseconds before storing.
func now() time.Time { return time.Now().In(zone).Truncate(time.Millisecond) }

// wantErr fails unless errors.Is(err, target) (target nil: err must be nil).
func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	switch {
	case target == nil && err != nil:
		t.Fatalf("%s: unexpected error: %v", what, err)
	case target != nil && !errors.Is(err, target):
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// must fails the test on error.
func must(t *testing.T, err error, what string) {
	t.Helper()
	wantErr(t, err, nil, what)
}

// wantEqual compares two records (pointers to structs) field by field:
// times with Equal (and non-zero ones returned must be UTC), nil and empty
// slices as equal, everything else with reflect.DeepEqual.
func wantEqual(t *testing.T, got, want any, what string) {
	t.Helper()
	if d := diff(got, want); len(d) > 0 {
		t.Fatalf("%s: records differ:\n%s", what, joinLines(d))
	}
}

var timeType = reflect.TypeOf(time.Time{})

func diff(got, want any) []string {
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	if g.Kind() == reflect.Pointer {
		if g.IsNil() || w.IsNil() {
			if g.IsNil() != w.IsNil() {
				return []string{fmt.Sprintf("got %v, want %v", got, want)}
			}
			return nil
		}
		g, w = g.Elem(), w.Elem()
	}
	var out []string
	for i := 0; i < g.NumField(); i++ {
		name := g.Type().Field(i).Name
		gf, wf := g.Field(i), w.Field(i)
		switch {
		case gf.Type() == timeType:
			gt, wt := gf.Interface().(time.Time), wf.Interface().(time.Time)
			if !gt.Equal(wt) {
				out = append(out, fmt.Sprintf("%s: got %v, want %v", name, gt, wt))
			} else if !gt.IsZero() && gt.Location() != time.UTC {
				out = append(out, fmt.Sprintf("%s: got location %v, want UTC", name, gt.Location()))
			}
		case gf.Kind() == reflect.Slice && gf.Len() == 0 && wf.Len() == 0:
		default:
			if !reflect.DeepEqual(gf.Interface(), wf.Interface()) {
				out = append(out, fmt.Sprintf("%s: got %#v, want %#v", name, gf.Interface(), wf.Interface()))
			}
		}
	}
	return out
}

func joinLines(a []string) string {
	s := ""
	for _, l := range a {
		s += "  " + l + "\n"
	}
	return s
}

// race starts n calls of fn at once: every goroutine is running and
// blocked on one channel before it is closed. It returns each call's error
// and the largest number of calls that were in flight at the same moment,
// which the caller checks to make sure the test really raced.
func race(n int, fn func(i int) error) (errs []error, maxInFlight int) {
	errs = make([]error, n)
	type span struct{ start, end time.Time }
	spans := make([]span, n)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			spans[i].start = time.Now()
			errs[i] = fn(i)
			spans[i].end = time.Now()
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()

	type event struct {
		at    time.Time
		delta int
	}
	events := make([]event, 0, 2*n)
	for _, s := range spans {
		events = append(events, event{s.start, +1}, event{s.end, -1})
	}
	sort.Slice(events, func(i, j int) bool {
		if events[i].at.Equal(events[j].at) {
			return events[i].delta < events[j].delta // ends before starts: no false overlap
		}
		return events[i].at.Before(events[j].at)
	})
	cur := 0
	for _, e := range events {
		cur += e.delta
		maxInFlight = max(maxInFlight, cur)
	}
	return errs, maxInFlight
}

// exactlyOneWinner checks a race's outcome: one nil error and every other
// one loserErr. It returns the winner.
func exactlyOneWinner(t *testing.T, errs []error, loserErr error, what string) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("%s: callers %d and %d both won", what, winner, i)
			}
			winner = i
		case !errors.Is(err, loserErr):
			t.Fatalf("%s: caller %d: got %v, want nil or %v", what, i, err, loserErr)
		}
	}
	if winner < 0 {
		t.Fatalf("%s: no caller won", what)
	}
	return winner
}

// raceRounds runs rounds of races, each of Racers calls started at once,
// and checks each has exactly one winner (every other call failing with
// loserErr). setup prepares round r and returns the racing call and an
// optional check of the winner.
//
// It also makes sure the test really raced. Calls that are quick and
// CPU-bound (an in-process SQLite on two cores) can run one after another
// even when started together, so it keeps going past RaceRounds, up to
// MaxRaceRounds, until at least MinRacedRounds rounds had two or more calls
// in flight at the same moment, and fails if that never happens.
func raceRounds(t *testing.T, what string, loserErr error,
	setup func(round int) (call func(i int) error, check func(winner int)),
) {
	t.Helper()
	var flights []int
	raced := 0
	for round := 0; round < MaxRaceRounds && (round < RaceRounds || raced < MinRacedRounds); round++ {
		call, check := setup(round)
		errs, inFlight := race(Racers, call)
		w := exactlyOneWinner(t, errs, loserErr, fmt.Sprintf("%s, round %d", what, round))
		if check != nil {
			check(w)
		}
		flights = append(flights, inFlight)
		if inFlight >= 2 {
			raced++
		}
	}
	if raced < MinRacedRounds {
		t.Fatalf("%s: in %d rounds only %d had two calls in flight at once (%v): the test did not race",
			what, len(flights), raced, flights)
	}
	t.Logf("%s: %d rounds of %d callers, most in flight at once per round: %v", what, len(flights), Racers, flights)
}
