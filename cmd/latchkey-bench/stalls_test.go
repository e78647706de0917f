package main

import (
	"bytes"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestParseCPUs(t *testing.T) {
	for in, want := range map[string][]int{"0": {0}, "0,1": {0, 1}, " 3 , 1": {3, 1}, "-1": {-1}} {
		got, err := parseCPUs(in)
		if err != nil || len(got) != len(want) {
			t.Errorf("parseCPUs(%q) = %v, %v; want %v", in, got, err, want)
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("parseCPUs(%q) = %v; want %v", in, got, want)
			}
		}
	}
	for _, in := range []string{"", "a", "0,0", "-2", "0,-1", "1,,2", "70000"} {
		if got, err := parseCPUs(in); err == nil {
			t.Errorf("parseCPUs(%q) = %v; want an error", in, got)
		}
	}
}

func TestParseStallsFlags(t *testing.T) {
	o, err := parseStallsFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.duration != 20*time.Second || o.min != 50*time.Microsecond || len(o.windows) != 2 || o.windows[0] != 3*time.Millisecond || len(o.cpus) == 0 {
		t.Errorf("defaults: %+v", o)
	}
	for _, args := range [][]string{
		{"-d", "10ms"}, {"-d", "11m"}, {"-min", "1us"}, {"-window", "5us"}, {"-window", "3ms,x"},
		{"-window", "2m"}, {"-cpus", "0,0"}, {"extra"},
	} {
		if _, err := parseStallsFlags(args, io.Discard); err == nil {
			t.Errorf("%q: want an error", args)
		}
	}
}

func TestUnion(t *testing.T) {
	got := union([][]stall{
		{{at: 10, len: 5}, {at: 40, len: 20}, {at: 100, len: 1}},
		{{at: 12, len: 10}, {at: 50, len: 5}, {at: 60, len: 3}, {at: 90, len: 2}},
	})
	want := []stall{{10, 12}, {40, 23}, {90, 2}, {100, 1}}
	if len(got) != len(want) {
		t.Fatalf("union = %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("union = %v; want %v", got, want)
		}
	}
	if got := union([][]stall{{{5, 5}}}); len(got) != 1 || got[0] != (stall{5, 5}) {
		t.Errorf("union of one CPU = %v", got)
	}
}

// stolenRef is stolen by brute force: every nanosecond of every window.
func stolenRef(stalls []stall, span, w, step int64) []int64 {
	var out []int64
	for t := int64(0); t+w <= span; t += step {
		var sum int64
		for x := t; x < t+w; x++ {
			for _, s := range stalls {
				if x >= s.at && x < s.at+s.len {
					sum++
				}
			}
		}
		out = append(out, sum)
	}
	return out
}

func TestStolen(t *testing.T) {
	got := stolen([]stall{{at: 100, len: 50}}, 1000, 100, 10)
	if len(got) != 91 {
		t.Fatalf("%d windows; want 91", len(got))
	}
	for at, want := range map[int]int64{0: 0, 1: 10, 4: 40, 5: 50, 6: 50, 10: 50, 12: 30, 15: 0, 90: 0} {
		if got[at] != want {
			t.Errorf("window at %d: %d stolen; want %d", at*10, got[at], want)
		}
	}
	if got := stolen(nil, 100, 200, 10); got != nil {
		t.Errorf("a window longer than the run: %v", got)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		var s []stall
		for at := int64(r.IntN(30)); at < 900; at += int64(1 + r.IntN(60)) {
			l := int64(1 + r.IntN(40))
			s = append(s, stall{at, l})
			at += l
		}
		w, step := int64(1+r.IntN(200)), int64(1+r.IntN(20))
		got, want := stolen(s, 1000, w, step), stolenRef(s, 1000, w, step)
		if len(got) != len(want) {
			t.Fatalf("stolen(%v, w=%d, step=%d): %d windows; want %d", s, w, step, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("stolen(%v, w=%d, step=%d)[%d] = %d; want %d", s, w, step, i, got[i], want[i])
			}
		}
	}
}

func TestFloorFor(t *testing.T) {
	if f := floorFor(nil, time.Second, 3*time.Millisecond); f.floor != 1 || f.p99 != 0 || f.windowsWithAnyLoss != 0 {
		t.Errorf("no stalls: %+v", f)
	}
	// One 2 ms stall a 100 ms: a 4 ms window loses time in (4+2)/100 of
	// its positions, 1 ms or more in 4/100, so p99 is the whole stall.
	var s []stall
	for at := 50 * time.Millisecond; at < time.Second; at += 100 * time.Millisecond {
		s = append(s, stall{at: int64(at), len: int64(2 * time.Millisecond)})
	}
	f := floorFor(s, time.Second, 4*time.Millisecond)
	if f.p50 != 0 || f.p99 != 2*time.Millisecond || f.max != 2*time.Millisecond || f.floor != 1.5 {
		t.Errorf("a 2 ms stall every 100 ms, 4 ms requests: %+v; want p50 0, p99 and max 2ms, floor 1.5", f)
	}
	if f.windowsWithAnyLoss < 0.05 || f.windowsWithAnyLoss > 0.07 {
		t.Errorf("windows that lose time: %.3f; want about 0.06", f.windowsWithAnyLoss)
	}
}

// TestStallsCmd measures for real, briefly: what it finds depends on the
// machine, so only the report's shape is checked.
func TestStallsCmd(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"stalls", "-d", "150ms", "-cpus", "-1", "-window", "1ms,5ms"}, &out, io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"stalls of 50µs or more in 150ms", "not pinned", "a request of 1ms:", "a request of 5ms:", "p99/p50 floor"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if err := run(t.Context(), []string{"stalls", "-d", "1ms"}, io.Discard, io.Discard, nil); err == nil {
		t.Error("-d 1ms: want an error")
	}
}
