package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// switchAt is one perf script line of a sched_switch on cpu at t (ns).
func switchAt(cpu int, t int64, next string, pid int) string {
	return fmt.Sprintf("        latchkey  4242 [%03d] %d.%06d:    sched:sched_switch: prev_comm=latchkey prev_pid=4242 prev_prio=120 prev_state=S ==> next_comm=%s next_pid=%d next_prio=120\n",
		cpu, t/1e9, t%1e9/1e3, next, pid)
}

func TestPerfTime(t *testing.T) {
	for in, want := range map[[2]string]int64{
		{"854", "912143"}:    854_912_143_000,
		{"1", "5"}:           1_500_000_000,
		{"0", "000000001"}:   1,
		{"12", "123456789"}:  12_123_456_789,
		{"3", "0000000001"}:  -1, // more than nanoseconds
		{"x", "1"}:           -1,
		{"1", "12a"}:         -1,
		{"99", "0000000000"}: -1,
	} {
		got, err := perfTime(in[0], in[1])
		if want < 0 {
			if err == nil {
				t.Errorf("perfTime(%q) = %d, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("perfTime(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

// readSwitches keeps the chosen CPU's switches only and turns them into
// runs: each from one switch to the next.
func TestReadSwitches(t *testing.T) {
	var b strings.Builder
	b.WriteString(switchAt(0, 10e9, "latchkey", 4242))
	b.WriteString(switchAt(1, 10e9+500e3, "latchkey-bench", 77)) // other CPU
	b.WriteString("        latchkey  4242 [000] 10.000600:     irq:softirq_entry: vec=3 [action=NET_RX]\n")
	b.WriteString(switchAt(0, 10e9+1e6, "kdamond.0", 71))
	b.WriteString(switchAt(0, 10e9+3e6, "swapper/0", 0))
	b.WriteString(switchAt(0, 10e9+4e6, "latchkey", 4242))
	runs, err := readSwitches(strings.NewReader(b.String()), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []coreRun{
		{10e9, 10e9 + 1e6, "latchkey", 4242},
		{10e9 + 1e6, 10e9 + 3e6, "kdamond.0", 71},
		{10e9 + 3e6, 10e9 + 4e6, "swapper/0", 0},
	}
	if fmt.Sprint(runs) != fmt.Sprint(want) {
		t.Fatalf("runs = %v\nwant   %v", runs, want)
	}
	if !runs[2].idle() || runs[1].idle() {
		t.Fatal("idle() wrong")
	}
}

func TestDumpRoundTrip(t *testing.T) {
	results := []*result{
		{lat: []time.Duration{3 * time.Millisecond, 4 * time.Millisecond}, at: []time.Duration{2 * time.Millisecond, 0}},
		{lat: []time.Duration{time.Millisecond}, at: []time.Duration{time.Millisecond}},
	}
	var buf bytes.Buffer
	if err := writeDump(&buf, 1_000_000_000, results); err != nil {
		t.Fatal(err)
	}
	got, err := readDump(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want := []dumpRequest{{1_000_000_000, 4e6}, {1_001_000_000, 1e6}, {1_002_000_000, 3e6}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dump = %v, want %v (in start order)", got, want)
	}
	for _, bad := range []string{"1 2 3\n", "1\n", "a 2\n", "1 -2\n"} {
		if _, err := readDump(strings.NewReader(bad)); err == nil {
			t.Errorf("readDump(%q): no error", bad)
		}
	}
}

// A synthetic window: the server runs the core for 1 s except a 3 ms run
// of another task at 200 ms and a 2 ms idle stretch at 600 ms. Requests
// start every 0.5 ms and take 1 ms, except the ones that overlap either
// disturbance, which take 4 ms; and three slow ones elsewhere, which
// nothing on the core explains (a 100 µs run of another task overlaps the
// last, too short to count).
func TestAnalyze(t *testing.T) {
	const ms = int64(time.Millisecond)
	base := int64(50e9)
	runs := []coreRun{
		{base, base + 200*ms, "latchkey", 1},
		{base + 200*ms, base + 203*ms, "kdamond.0", 71},
		{base + 203*ms, base + 600*ms, "latchkey", 1},
		{base + 600*ms, base + 602*ms, "swapper/0", 0},
		{base + 602*ms, base + 902*ms, "latchkey", 1},
		{base + 902*ms, base + 902*ms + ms/10, "1_scheduler", 3033},
		{base + 902*ms + ms/10, base + 1000*ms, "latchkey", 1},
	}
	var reqs []dumpRequest
	for s := base; s+4*ms <= base+1000*ms; s += ms / 2 {
		r := dumpRequest{s, ms}
		if (s < base+203*ms && s+4*ms > base+200*ms) || (s < base+602*ms && s+4*ms > base+600*ms) {
			r.lat = 4 * ms
		}
		reqs = append(reqs, r)
	}
	for _, at := range []int64{400, 800, 900} {
		reqs = append(reqs, dumpRequest{base + at*ms + ms/4, 5 * ms})
	}
	reqs = append(reqs, dumpRequest{base - ms, ms}) // before the trace: ignored
	rep, err := analyze(reqs, runs, "latchkey", 500*time.Microsecond, 100*time.Microsecond)
	if err != nil {
		t.Fatal(err)
	}
	if rep.requests != len(reqs)-1 {
		t.Fatalf("requests = %d, want %d", rep.requests, len(reqs)-1)
	}
	if rep.p50 != 1 || rep.p99 != 4 {
		t.Fatalf("p50, p99 = %v, %v; want 1, 4", rep.p50, rep.p99)
	}
	if rep.median["server"] < 0.99 {
		t.Fatalf("median band's core = %v, want all server", rep.median)
	}
	if rep.slowest["kdamond.N"] == 0 || rep.slowest["idle"] == 0 {
		t.Fatalf("slowest 1 %%'s core = %v, want kdamond and idle time", rep.slowest)
	}
	if rep.slowOther == 0 || rep.slowIdle == 0 || rep.slowEither != rep.slowOther+rep.slowIdle || rep.slowEither >= rep.slowestN {
		t.Fatalf("slowest %d: other %d idle %d either %d", rep.slowestN, rep.slowOther, rep.slowIdle, rep.slowEither)
	}
	if rep.restP50 != 1 || rep.restP99 != 1 {
		t.Fatalf("undisturbed p50, p99 = %v, %v; want 1, 1", rep.restP50, rep.restP99)
	}
	if len(rep.longest) != 2 || rep.longest[0].comm != "kdamond.0" || rep.longest[1].comm != "1_scheduler" {
		t.Fatalf("longest = %v", rep.longest)
	}
	var out bytes.Buffer
	rep.write(&out)
	for _, want := range []string{"p99/p50 4.00", "slowest 1 %", "kdamond.N", "idle", "requests with neither: p50 1.00 ms, p99 1.00 ms", "3000 µs  kdamond.0 (pid 71)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	// A minimum idle stretch longer than the one in the trace: no request
	// is counted as overlapping idle time.
	if rep, err = analyze(reqs, runs, "latchkey", 500*time.Microsecond, 5*time.Millisecond); err != nil || rep.slowIdle != 0 {
		t.Fatalf("min-idle 5ms: idle %d, %v", rep.slowIdle, err)
	}
	// Counting any run of another task: the 100 µs one delays one more.
	slowOther := rep.slowOther
	if rep, err = analyze(reqs, runs, "latchkey", 50*time.Microsecond, 100*time.Microsecond); err != nil || rep.slowOther != slowOther+1 {
		t.Fatalf("min-other 50µs: other %d, want %d (%v)", rep.slowOther, slowOther+1, err)
	}
	if _, err := analyze(reqs[:10], runs, "latchkey", 0, 0); err == nil || !strings.Contains(err.Error(), "CLOCK_MONOTONIC") {
		t.Fatalf("too few requests: %v", err)
	}
	if _, err := analyze(reqs, nil, "latchkey", 0, 0); err == nil {
		t.Fatal("no runs: no error")
	}
}

func TestSchedCmd(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := schedCmd([]string{filepath.Join(dir, "perf.txt")}, &out); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Fatalf("no -dump: %v", err)
	}
	var dump, perf strings.Builder
	base := int64(7e9)
	perf.WriteString(switchAt(0, base, "latchkey", 9))
	perf.WriteString(switchAt(0, base+time.Second.Nanoseconds(), "swapper/0", 0))
	for i := range int64(500) {
		fmt.Fprintf(&dump, "%d %d\n", base+i*1e6, 1e6+i%10*1e5)
	}
	if err := os.WriteFile(filepath.Join(dir, "dump"), []byte(dump.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "perf.txt"), []byte(perf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := schedCmd([]string{"-dump", filepath.Join(dir, "dump"), filepath.Join(dir, "perf.txt")}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "requests inside the kernel trace: 500") {
		t.Fatalf("report:\n%s", out.String())
	}
}

// The dump and perf-script readers take any text without panicking, and
// whatever they accept analyze takes too.
func FuzzSchedInputs(f *testing.F) {
	f.Add("1000 5\n2000 7\n", switchAt(0, 1e9, "latchkey", 4242)+switchAt(0, 2e9, "swapper/0", 0))
	f.Add("", "        latchkey  1 [000] 1.5: sched:sched_switch: ==> next_comm=x next_pid=9\n")
	f.Add("9223372036854775807 9223372036854775807\n", "a [000] 99999999999.999999999: sched:sched_switch: x ==> next_comm= next_pid=0\n")
	f.Fuzz(func(t *testing.T, dump, perf string) {
		reqs, err := readDump(strings.NewReader(dump))
		if err != nil {
			return
		}
		runs, err := readSwitches(strings.NewReader(perf), 0)
		if err != nil {
			return
		}
		if rep, err := analyze(reqs, runs, "latchkey", 500*time.Microsecond, 100*time.Microsecond); err == nil {
			rep.write(io.Discard)
		}
	})
}
