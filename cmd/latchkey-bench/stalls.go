package main

// latchkey-bench stalls: how often the machine takes its cores away from
// threads that never give them up, and what that alone does to a tail.
//
// One thread per CPU of -cpus, pinned to it, reads the monotonic clock in
// a loop and records every gap between two readings longer than -min:
// time in which the thread did not run (the hypervisor ran something else
// on the physical core, the kernel ran an interrupt or another task).
// Both cores are busy at once, as in a benchmark (the server on one, the
// load generator on the other): on a VM the host treats a guest with both
// vCPUs busy differently from one with a single busy vCPU.
//
// A server on one core is work-conserving: a stall of its core delays
// every request in flight by its length; a stall of the load generator's
// core delays the answers it has not read yet and the requests it has not
// sent. So a request whose latency would be W loses the time inside its
// window in which either core was stalled (the union of the stalls), and
// the spread of that stolen time over all windows of length W is the tail
// the machine gives even a server and a client with no tail of their own.
// For each -window W (the median latency of the run it stands for) the
// report gives the stolen time's p50 / p99 / max over windows starting
// every 10 µs, and
//
//	floor = (W + p99 stolen) / (W + p50 stolen)
//
// a p99/p50 that no server gets under on this machine at that median
// (docs/BENCHMARKS.md, session 14). It is a lower bound: it leaves out
// every source of variance inside the server and the client.

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bounds of one stalls run.
const (
	stallsMinDuration = 100 * time.Millisecond
	stallsMinGap      = 5 * time.Microsecond
	stallsMaxGaps     = 1 << 20 // 16 MiB of stalls; a -min that small is meaningless
	stallsStep        = 10 * time.Microsecond
)

// stall is one gap in the clock readings: the thread did not run for len
// nanoseconds from at (nanoseconds since the run's start).
type stall struct{ at, len int64 }

// stallsOptions are the stalls subcommand's flags.
type stallsOptions struct {
	duration, min time.Duration
	cpus          []int // -1 alone: one thread, not pinned
	windows       []time.Duration
}

func parseStallsFlags(args []string, stderr io.Writer) (*stallsOptions, error) {
	o := &stallsOptions{}
	fs := flag.NewFlagSet("latchkey-bench stalls", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "d", 20*time.Second, "how long to measure (100ms..10m)")
	fs.DurationVar(&o.min, "min", 50*time.Microsecond, "the shortest gap counted as a stall (at least 5µs)")
	cpus := fs.String("cpus", defaultStallCPUs(), "comma-separated CPUs to measure at once, a thread pinned to each (the server's and the load generator's cores in a benchmark); -1: one thread, not pinned")
	windows := fs.String("window", "3ms,12ms", "comma-separated request latencies (a run's median) to give the machine's p99/p50 floor for")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: latchkey-bench stalls [-d 20s] [-cpus 0,1] [-window 3ms,12ms] [-min 50us]\n\n"+
			"Measures how often and how long this machine takes its CPUs away from threads that never yield,\n"+
			"and the p99/p50 a server with the given median latency cannot get under because of it.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	if o.duration < stallsMinDuration || o.duration > maxDuration {
		errs = append(errs, fmt.Errorf("-d must be within %v..%v", stallsMinDuration, maxDuration))
	}
	if o.min < stallsMinGap {
		errs = append(errs, fmt.Errorf("-min must be at least %v", stallsMinGap))
	}
	if c, err := parseCPUs(*cpus); err != nil {
		errs = append(errs, err)
	} else {
		o.cpus = c
	}
	for _, s := range strings.Split(*windows, ",") {
		w, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || w < stallsStep || w > time.Minute {
			errs = append(errs, fmt.Errorf("-window %q: want durations between %v and 1m", s, stallsStep))
			continue
		}
		o.windows = append(o.windows, w)
	}
	return o, errors.Join(errs...)
}

// defaultStallCPUs is "0,1" where there are two CPUs or more, as the
// benchmarks pin the server to CPU 0 and the load to CPU 1.
func defaultStallCPUs() string {
	if runtime.NumCPU() >= 2 {
		return "0,1"
	}
	return "0"
}

// parseCPUs reads -cpus: distinct CPU numbers, or -1 alone.
func parseCPUs(v string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(v, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < -1 || c >= 1<<16 {
			return nil, fmt.Errorf("-cpus %q: want CPU numbers separated by commas, or -1", v)
		}
		if slices.Contains(out, c) {
			return nil, fmt.Errorf("-cpus %q: CPU %d twice", v, c)
		}
		out = append(out, c)
	}
	if len(out) > 1 && slices.Contains(out, -1) {
		return nil, fmt.Errorf("-cpus %q: -1 (not pinned) stands alone", v)
	}
	return out, nil
}

func stallsCmd(args []string, stdout, stderr io.Writer) error {
	o, err := parseStallsFlags(args, stderr)
	if err != nil {
		return err
	}
	if runtime.GOMAXPROCS(0) < len(o.cpus) {
		runtime.GOMAXPROCS(len(o.cpus)) // each measuring thread needs a P of its own
	}
	// The collector is off while measuring, so that the Go runtime adds no
	// stall of its own (the loops allocate only when a slice of stalls
	// grows).
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var (
		wg     sync.WaitGroup
		ready  sync.WaitGroup
		begin  = make(chan struct{})
		start  time.Time
		stalls = make([][]stall, len(o.cpus))
		errs   = make([]error, len(o.cpus))
	)
	ready.Add(len(o.cpus))
	for i, cpu := range o.cpus {
		wg.Go(func() {
			stalls[i], errs[i] = measureStalls(cpu, &ready, begin, &start, o.duration, o.min)
		})
	}
	ready.Wait() // every thread pinned (or failed)
	start = time.Now()
	close(begin)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	writeStalls(stdout, o, stalls)
	return nil
}

// measureStalls pins the calling goroutine's thread to cpu (unless -1),
// says so on ready, waits for begin, and then records for d every gap of
// at least min between two clock readings, in nanoseconds since *start
// (set before begin is closed).
func measureStalls(cpu int, ready *sync.WaitGroup, begin <-chan struct{}, start *time.Time, d, min time.Duration) ([]stall, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var err error
	if cpu >= 0 {
		if err = pinThread(cpu); err != nil {
			err = fmt.Errorf("-cpus: CPU %d: %w", cpu, err)
		}
	}
	ready.Done()
	<-begin
	if err != nil {
		return nil, err
	}
	t0 := *start
	stalls := make([]stall, 0, 4096)
	end, minNs := int64(d), int64(min)
	last := int64(time.Since(t0))
	for last < end {
		now := int64(time.Since(t0))
		if gap := now - last; gap >= minNs {
			if len(stalls) == stallsMaxGaps {
				return nil, fmt.Errorf("more than %d stalls of %v or more: raise -min", stallsMaxGaps, min)
			}
			stalls = append(stalls, stall{at: last, len: gap})
		}
		last = now
	}
	return stalls, nil
}

// union merges the stalls of several CPUs (each in time order) into the
// stretches in which at least one of them was stalled, in time order and
// not overlapping.
func union(per [][]stall) []stall {
	var all []stall
	for _, s := range per {
		all = append(all, s...)
	}
	slices.SortFunc(all, func(a, b stall) int { return cmp.Compare(a.at, b.at) })
	var out []stall
	for _, s := range all {
		if n := len(out); n > 0 && s.at <= out[n-1].at+out[n-1].len {
			out[n-1].len = max(out[n-1].len, s.at+s.len-out[n-1].at)
			continue
		}
		out = append(out, s)
	}
	return out
}

// stolen returns, for every window of length w that starts at a multiple
// of step within [0, span-w], the time of stalls inside it. stalls are in
// time order and do not overlap (measureStalls's output).
func stolen(stalls []stall, span, w, step int64) []int64 {
	if w > span || step <= 0 {
		return nil
	}
	out := make([]int64, 0, (span-w)/step+1)
	first := 0 // the first stall that ends after the window's start
	for t := int64(0); t+w <= span; t += step {
		for first < len(stalls) && stalls[first].at+stalls[first].len <= t {
			first++
		}
		var sum int64
		for _, s := range stalls[first:] {
			if s.at >= t+w {
				break
			}
			sum += min(s.at+s.len, t+w) - max(s.at, t)
		}
		out = append(out, sum)
	}
	return out
}

// stallFloor is the machine's share of a tail at median latency w.
type stallFloor struct {
	window             time.Duration
	p50, p99, max      time.Duration // stolen time over the windows
	floor              float64       // (w + p99) / (w + p50)
	windowsWithAnyLoss float64       // share of windows that lost anything
}

func floorFor(stalls []stall, span, w time.Duration) stallFloor {
	s := stolen(stalls, int64(span), int64(w), int64(stallsStep))
	f := stallFloor{window: w}
	if len(s) == 0 {
		return f
	}
	slices.Sort(s)
	d := make([]time.Duration, len(s))
	hit := 0
	for i, v := range s {
		d[i] = time.Duration(v)
		if v > 0 {
			hit++
		}
	}
	f.p50, f.p99, f.max = percentile(d, 0.50), percentile(d, 0.99), d[len(d)-1]
	f.floor = float64(w+f.p99) / float64(w+f.p50)
	f.windowsWithAnyLoss = float64(hit) / float64(len(s))
	return f
}

func writeStalls(w io.Writer, o *stallsOptions, per [][]stall) {
	secs := o.duration.Seconds()
	fmt.Fprintf(w, "stalls of %v or more in %v, every CPU measured kept busy:\n", o.min, o.duration)
	for i, cpu := range o.cpus {
		name := "not pinned"
		if cpu >= 0 {
			name = "CPU " + strconv.Itoa(cpu)
		}
		writeStallLine(w, name, per[i], secs, o.min)
	}
	all := per[0]
	if len(per) > 1 {
		all = union(per)
		writeStallLine(w, "either", all, secs, o.min)
	}
	for _, win := range o.windows {
		f := floorFor(all, o.duration, win)
		fmt.Fprintf(w, "  a request of %v: stolen p50 %v, p99 %v, max %v (%.1f %% of windows lose time) -> p99/p50 floor %.2f\n",
			win, f.p50.Round(time.Microsecond), f.p99.Round(time.Microsecond), f.max.Round(time.Microsecond), 100*f.windowsWithAnyLoss, f.floor)
	}
}

// writeStallLine prints one CPU's (or the union's) stalls: the share of
// the time lost, how many a second at or above a few lengths, the longest.
func writeStallLine(w io.Writer, name string, stalls []stall, secs float64, minGap time.Duration) {
	var lost time.Duration
	for _, s := range stalls {
		lost += time.Duration(s.len)
	}
	fmt.Fprintf(w, "  %-10s %5.2f %% of the time; a second:", name, 100*lost.Seconds()/secs)
	for _, b := range []time.Duration{minGap, 250 * time.Microsecond, time.Millisecond, 4 * time.Millisecond} {
		if b < minGap {
			continue
		}
		n := 0
		for _, s := range stalls {
			if time.Duration(s.len) >= b {
				n++
			}
		}
		fmt.Fprintf(w, " %.1f ≥ %v,", float64(n)/secs, b)
	}
	longest := slices.SortedFunc(slices.Values(stalls), func(a, b stall) int { return cmp.Compare(b.len, a.len) })
	fmt.Fprint(w, " longest")
	for _, s := range longest[:min(5, len(longest))] {
		fmt.Fprintf(w, " %v", time.Duration(s.len).Round(time.Microsecond))
	}
	fmt.Fprintln(w)
}
