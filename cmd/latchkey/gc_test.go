package main

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestServeGCLimit(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int64
	}{
		{0, serveGCMinLimit},
		{10 << 20, serveGCMinLimit},
		{13 << 20, serveGCMinLimit},
		{50 << 20, 150 << 20},
		{1 << 30, 3 << 30},
	} {
		if got := serveGCLimit(tc.live); got != tc.want {
			t.Errorf("serveGCLimit(%d) = %d, want %d", tc.live, got, tc.want)
		}
	}
}

// A momentary rise of the live heap (a collection that marked during an
// argon2id hash) does not raise the limit; a lasting one does.
func TestLiveWindow(t *testing.T) {
	var w liveWindow
	steps := []struct{ live, want uint64 }{
		{5, 5},
		{25, 5}, // spike
		{5, 5},
		{6, 5},
		{40, 5}, // a lasting rise: followed once the window holds only it
		{41, 6},
		{42, 40},
		{43, 41},
		{3, 3}, // a fall is followed at once
	}
	for i, s := range steps {
		if got := w.add(s.live); got != s.want {
			t.Errorf("step %d: add(%d) = %d, want %d", i, s.live, got, s.want)
		}
	}
}

// tuneGC sets GOGC=400 and the memory limit, and leaves both alone when
// the operator set GOGC or GOMEMLIMIT.
func TestTuneGC(t *testing.T) {
	prevPercent := debug.SetGCPercent(100)
	prevLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(prevPercent); debug.SetMemoryLimit(prevLimit) })
	current := func() (int, int64) {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p, debug.SetMemoryLimit(-1)
	}

	for _, name := range []string{"GOGC", "GOMEMLIMIT"} {
		stop := tuneGC(func(k string) string {
			if k == name {
				return "200"
			}
			return ""
		})
		stop()
		if p, l := current(); p != 100 || l != math.MaxInt64 {
			t.Errorf("with %s set: GOGC %d, limit %d; want them untouched", name, p, l)
		}
	}

	stop := tuneGC(func(string) string { return "" })
	p, l := current()
	stop()
	if p != serveGCPercent || l != serveGCMinLimit {
		t.Errorf("GOGC %d, limit %d; want %d and %d", p, l, serveGCPercent, serveGCMinLimit)
	}
}
