package main

// latchkey-bench sched -dump DUMP PERF_SCRIPT: what the server's core was
// doing while the slowest requests waited, from the kernel's side. The Go
// execution trace (trace.go) sees only the server's goroutines; this sees
// everything the kernel ran on the core: the server's threads, other
// processes and kernel threads, and the core sitting idle (the server
// blocked on the disk, say).
//
// Inputs: the load tool's -dump (each measured request's start on
// CLOCK_MONOTONIC and its latency) and the text of a kernel trace of the
// server's core taken during the same window with the same clock:
//
//	perf record -k CLOCK_MONOTONIC -e sched:sched_switch -C 0 -o P -- sleep 5
//	perf script -i P -F comm,tid,cpu,time,event,trace > P.txt
//
// The report splits the time of the median band (40th-60th percentile) and
// of the slowest 1 % by what ran on the core, says how many of the slowest
// 1 % were delayed by other tasks or overlapped an idle stretch, and what
// p99/p50 would be without such requests: the share of the tail the core's other
// occupants explain. docs/BENCHMARKS.md, session 10.

import (
	"bufio"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// writeDump writes every measured request of results to w: its start on
// CLOCK_MONOTONIC (startMono is the measured window's start on that clock)
// and its latency, in nanoseconds, in start order.
func writeDump(w io.Writer, startMono int64, results []*result) error {
	var reqs []dumpRequest
	for _, res := range results {
		for i, at := range res.at {
			reqs = append(reqs, dumpRequest{start: startMono + int64(at), lat: int64(res.lat[i])})
		}
	}
	slices.SortFunc(reqs, func(a, b dumpRequest) int { return cmp.Compare(a.start, b.start) })
	bw := bufio.NewWriter(w)
	for _, r := range reqs {
		fmt.Fprintf(bw, "%d %d\n", r.start, r.lat)
	}
	return bw.Flush()
}

// dumpRequest is one line of a -dump file, in nanoseconds.
type dumpRequest struct{ start, lat int64 }

func (r dumpRequest) end() int64 { return r.start + r.lat }

func readDump(r io.Reader) ([]dumpRequest, error) {
	var out []dumpRequest
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("dump line %d: want START LATENCY", n)
		}
		s, err1 := strconv.ParseInt(f[0], 10, 64)
		l, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil || l < 0 {
			return nil, fmt.Errorf("dump line %d: want two integers (nanoseconds)", n)
		}
		out = append(out, dumpRequest{s, l})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b dumpRequest) int { return cmp.Compare(a.start, b.start) })
	return out, nil
}

// coreRun is a stretch of time in which one task ran on the core (the
// idle task: pid 0).
type coreRun struct {
	start, end int64 // ns, CLOCK_MONOTONIC
	comm       string
	pid        int
}

func (c coreRun) idle() bool { return c.pid == 0 }

// switchLine matches perf script's sched:sched_switch lines (-F
// comm,tid,cpu,time,event,trace): "comm tid [cpu] secs.micros:
// sched:sched_switch: prev_comm=... ==> next_comm=NAME next_pid=PID ...".
var switchLine = regexp.MustCompile(`\[(\d+)\]\s+(\d+)\.(\d+):\s+sched:sched_switch:.*==> next_comm=(.*) next_pid=(\d+)`)

// readSwitches turns the sched_switch events of one CPU into the runs
// between them. Other events and other CPUs are ignored.
func readSwitches(r io.Reader, cpu int) ([]coreRun, error) {
	var (
		runs []coreRun
		cur  *coreRun
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := switchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if c, _ := strconv.Atoi(m[1]); c != cpu {
			continue
		}
		t, err := perfTime(m[2], m[3])
		if err != nil {
			return nil, err
		}
		pid, _ := strconv.Atoi(m[5])
		if cur != nil {
			cur.end = t
			runs = append(runs, *cur)
		}
		cur = &coreRun{start: t, comm: m[4], pid: pid}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return runs, nil
}

// perfTime reads perf script's "SECONDS.FRACTION" timestamp as nanoseconds.
func perfTime(secs, frac string) (int64, error) {
	s, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || len(frac) > 9 {
		return 0, fmt.Errorf("perf timestamp %s.%s", secs, frac)
	}
	f, err := strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("perf timestamp %s.%s", secs, frac)
	}
	return s*1e9 + f, nil
}

// digits folds the numbers in a task name (kworker/0:1H, 1_scheduler), so
// that one kind of task is one row.
var digits = regexp.MustCompile(`\d+`)

// schedReport is what sched prints.
type schedReport struct {
	requests          int     // inside the trace
	p50, p99          float64 // ms
	median, slowest   map[string]float64
	medianN, slowestN int
	slowOther         int // of the slowest 1 %: with at least minOther of other tasks' runs
	slowIdle          int // ... overlapping an idle stretch of at least minIdle
	slowEither        int
	restP50, restP99  float64 // requests overlapping neither
	longest           []coreRun
}

// analyze lines requests up with the runs of the server's core. server
// names the server's task (its comm); minOther is how long other tasks
// must have run during a request to count as having delayed it (short
// runs of a busy neighbour overlap almost every request of several
// milliseconds and delay none by much); minIdle is the shortest idle
// stretch counted as the server waiting.
func analyze(reqs []dumpRequest, runs []coreRun, server string, minOther, minIdle time.Duration) (*schedReport, error) {
	if len(runs) == 0 {
		return nil, errors.New("no sched:sched_switch events for that CPU in the kernel trace")
	}
	lo, hi := runs[0].start, runs[len(runs)-1].end
	var in []dumpRequest
	for _, r := range reqs {
		if r.start >= lo && r.end() <= hi {
			in = append(in, r)
		}
	}
	if len(in) < 100 {
		return nil, fmt.Errorf("%d requests fall inside the kernel trace (%d in the dump): were both taken in the same window, with perf record -k CLOCK_MONOTONIC?", len(in), len(reqs))
	}
	kind := func(c coreRun) string {
		switch {
		case c.idle():
			return "idle"
		case c.comm == server:
			return "server"
		}
		return digits.ReplaceAllString(c.comm, "N")
	}
	// overlaps calls fn for every run overlapping [a, b) with the overlap.
	starts := make([]int64, len(runs))
	for i, c := range runs {
		starts[i] = c.start
	}
	overlaps := func(a, b int64, fn func(c coreRun, ns int64)) {
		i, _ := slices.BinarySearch(starts, a)
		if i > 0 {
			i--
		}
		for ; i < len(runs) && runs[i].start < b; i++ {
			if o := min(b, runs[i].end) - max(a, runs[i].start); o > 0 {
				fn(runs[i], o)
			}
		}
	}
	byLat := slices.Clone(in)
	slices.SortStableFunc(byLat, func(a, b dumpRequest) int { return cmp.Compare(a.lat, b.lat) })
	// pct is the load tool's own percentile (report.go) of rs, sorted by
	// latency, in milliseconds.
	pct := func(rs []dumpRequest, p float64) float64 {
		lats := make([]time.Duration, len(rs))
		for i, r := range rs {
			lats[i] = time.Duration(r.lat)
		}
		return float64(percentile(lats, p)) / float64(time.Millisecond)
	}
	rep := &schedReport{requests: len(in), p50: pct(byLat, 0.5), p99: pct(byLat, 0.99)}
	share := func(rs []dumpRequest) map[string]float64 {
		ns := map[string]int64{}
		var total int64
		for _, r := range rs {
			total += r.lat
			overlaps(r.start, r.end(), func(c coreRun, o int64) { ns[kind(c)] += o })
		}
		out := map[string]float64{}
		for k, v := range ns {
			out[k] = float64(v) / float64(max(total, 1))
		}
		return out
	}
	med := byLat[len(byLat)*40/100 : len(byLat)*60/100]
	slow := byLat[len(byLat)*99/100:]
	rep.median, rep.medianN = share(med), len(med)
	rep.slowest, rep.slowestN = share(slow), len(slow)
	disturbed := func(r dumpRequest) (other, idle bool) {
		var otherNs int64
		overlaps(r.start, r.end(), func(c coreRun, o int64) {
			switch {
			case c.idle():
				idle = idle || c.end-c.start >= int64(minIdle)
			case c.comm != server:
				otherNs += o
			}
		})
		return otherNs >= int64(minOther), idle
	}
	for _, r := range slow {
		o, i := disturbed(r)
		if o {
			rep.slowOther++
		}
		if i {
			rep.slowIdle++
		}
		if o || i {
			rep.slowEither++
		}
	}
	var rest []dumpRequest
	for _, r := range byLat {
		if o, i := disturbed(r); !o && !i {
			rest = append(rest, r)
		}
	}
	if len(rest) > 0 {
		rep.restP50, rep.restP99 = pct(rest, 0.5), pct(rest, 0.99)
	}
	for _, c := range runs {
		if !c.idle() && c.comm != server {
			rep.longest = append(rep.longest, c)
		}
	}
	slices.SortStableFunc(rep.longest, func(a, b coreRun) int { return cmp.Compare(b.end-b.start, a.end-a.start) })
	rep.longest = rep.longest[:min(len(rep.longest), 10)]
	return rep, nil
}

func (rep *schedReport) write(w io.Writer) {
	fmt.Fprintf(w, "requests inside the kernel trace: %d; p50 %.2f ms, p99 %.2f ms, p99/p50 %.2f\n", rep.requests, rep.p50, rep.p99, rep.p99/rep.p50)
	band := func(name string, n int, sh map[string]float64) {
		fmt.Fprintf(w, "%s (%d requests): the core during them\n", name, n)
		keys := slices.Collect(maps.Keys(sh))
		slices.SortFunc(keys, func(a, b string) int { return cmp.Or(cmp.Compare(sh[b], sh[a]), cmp.Compare(a, b)) })
		for _, k := range keys[:min(len(keys), 8)] {
			fmt.Fprintf(w, "  %-24s %6.2f %%\n", k, 100*sh[k])
		}
	}
	band("median band (p40-p60)", rep.medianN, rep.median)
	band("slowest 1 %", rep.slowestN, rep.slowest)
	pc := func(n int) float64 { return 100 * float64(n) / float64(max(rep.slowestN, 1)) }
	fmt.Fprintf(w, "slowest 1 %%: delayed by other tasks %.0f %%, overlapping an idle stretch %.0f %%, either %.0f %%\n", pc(rep.slowOther), pc(rep.slowIdle), pc(rep.slowEither))
	if rep.restP50 > 0 {
		fmt.Fprintf(w, "requests with neither: p50 %.2f ms, p99 %.2f ms, p99/p50 %.2f\n", rep.restP50, rep.restP99, rep.restP99/rep.restP50)
	}
	if len(rep.longest) > 0 {
		fmt.Fprintln(w, "longest runs of other tasks on the core:")
		for _, c := range rep.longest {
			fmt.Fprintf(w, "  %8.0f µs  %s (pid %d)\n", float64(c.end-c.start)/1e3, c.comm, c.pid)
		}
	}
}

func schedCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("sched", flag.ContinueOnError)
	dump := fs.String("dump", "", "the load tool's -dump file of the same window (required)")
	cpu := fs.Int("cpu", 0, "the server's CPU")
	server := fs.String("server", "latchkey", "the server's task name (comm) in the kernel trace")
	minOther := fs.Duration("min-other", 500*time.Microsecond, "how long other tasks must run on the core during a request to count as delaying it")
	minIdle := fs.Duration("min-idle", 100*time.Microsecond, "the shortest idle stretch of the core counted as the server waiting")
	fs.SetOutput(stdout)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *dump == "" {
		return errors.New("usage: latchkey-bench sched -dump DUMP [-cpu N] [-server COMM] [-min-other D] [-min-idle D] PERF_SCRIPT (perf script -F comm,tid,cpu,time,event,trace of perf record -k CLOCK_MONOTONIC -e sched:sched_switch)")
	}
	df, err := os.Open(*dump)
	if err != nil {
		return err
	}
	defer df.Close()
	reqs, err := readDump(df)
	if err != nil {
		return err
	}
	pf, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer pf.Close()
	runs, err := readSwitches(pf, *cpu)
	if err != nil {
		return err
	}
	rep, err := analyze(reqs, runs, *server, *minOther, *minIdle)
	if err != nil {
		return err
	}
	rep.write(stdout)
	return nil
}
