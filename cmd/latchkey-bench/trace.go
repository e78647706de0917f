package main

// latchkey-bench trace TRACE: where the slowest requests spend their time,
// from a Go execution trace of the server under load (`curl
// 127.0.0.1:6061/debug/pprof/trace?seconds=2 -o TRACE` with
// LATCHKEY_PPROF_ADDR set). The CPU profile shows where the CPU goes; it
// cannot show time in which a request waits and nothing runs (a thread
// blocked in a system call holding the only P, session 4's SQLite
// checkpoints). This does.
//
// A request cycle is one goroutine's time from being woken by the network
// poller to its next wait on the network: for an HTTP/1.1 keep-alive
// connection, from the request's bytes being seen to the response written.
// Each cycle's time is split into running, runnable (by what it became
// runnable after) and waiting (by reason and the first non-runtime frame).
// The report gives the cycles' percentiles, the average split of the
// median band (40th-60th percentile) and of the slowest 1 %, and when the
// slowest 1 % started: clustered starts point at a stall, spread ones at
// scheduling. With -syscalls it lists instead what stalled: long system
// calls, stretches with nothing running, GC pauses (traceSyscalls).

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

type traceCycle struct {
	start, end trace.Time
	parts      map[string]float64 // ms
}

type traceGoroutine struct {
	cycle *traceCycle
	last  trace.Time
	state string
}

// traceCycles reads an execution trace and returns its request cycles,
// sorted by duration, and the trace's first timestamp.
func traceCycles(r io.Reader) ([]*traceCycle, trace.Time, error) {
	tr, err := trace.NewReader(r)
	if err != nil {
		return nil, 0, err
	}
	gs := map[trace.GoID]*traceGoroutine{}
	var (
		cycles []*traceCycle
		first  trace.Time
	)
	for {
		ev, err := tr.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		if first == 0 {
			first = ev.Time()
		}
		if ev.Kind() != trace.EventStateTransition {
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind != trace.ResourceGoroutine {
			continue
		}
		id := st.Resource.Goroutine()
		from, to := st.Goroutine()
		g := gs[id]
		if g == nil {
			g = &traceGoroutine{}
			gs[id] = g
		}
		now := ev.Time()
		if g.cycle != nil {
			g.cycle.parts[g.state] += float64(now-g.last) / 1e6
		}
		g.last = now
		switch to {
		case trace.GoRunning:
			g.state = "run"
		case trace.GoRunnable:
			switch {
			case from == trace.GoWaiting && strings.HasPrefix(g.state, "wait:network"):
				g.cycle = &traceCycle{start: now, parts: map[string]float64{}}
				g.state = "runnable after network"
			case from == trace.GoRunning:
				g.state = "runnable (preempted or yielded)"
			default:
				g.state = "runnable after " + strings.TrimPrefix(g.state, "wait:")
			}
		case trace.GoWaiting:
			g.state = "wait:" + st.Reason + waitSite(ev)
			if st.Reason == "network" && g.cycle != nil {
				g.cycle.end = now
				cycles = append(cycles, g.cycle)
				g.cycle = nil
			}
		default:
			g.state = to.String()
		}
	}
	sort.Slice(cycles, func(i, j int) bool { return cycles[i].end-cycles[i].start < cycles[j].end-cycles[j].start })
	return cycles, first, nil
}

// waitSite names the first frame outside the runtime of a goroutine that
// starts waiting (" @ package.Function"), or "".
func waitSite(ev trace.Event) string {
	for f := range ev.Stack().Frames() {
		if strings.HasPrefix(f.Func, "runtime.") || f.Func == "" {
			continue
		}
		return " @ " + f.Func[strings.LastIndex(f.Func, "/")+1:]
	}
	return ""
}

func (c *traceCycle) ms() float64 { return float64(c.end-c.start) / 1e6 }

// traceReport prints the analysis of cycles.
func traceReport(w io.Writer, cycles []*traceCycle, first trace.Time) error {
	n := len(cycles)
	if n == 0 {
		return errors.New("trace: no request cycles (was the server under load while the trace ran?)")
	}
	q := func(p float64) float64 { return cycles[int(p*float64(n-1))].ms() }
	fmt.Fprintf(w, "%d request cycles: p10 %.2f  p50 %.2f  p90 %.2f  p99 %.2f  max %.2f ms\n", n, q(.1), q(.5), q(.9), q(.99), q(1))
	band := func(label string, cs []*traceCycle) {
		sum := map[string]float64{}
		for _, c := range cs {
			for k, v := range c.parts {
				sum[k] += v
			}
		}
		keys := make([]string, 0, len(sum))
		for k := range sum {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return sum[keys[i]] > sum[keys[j]] })
		fmt.Fprintf(w, "\n%s (%d cycles), average ms:\n", label, len(cs))
		for _, k := range keys {
			if avg := sum[k] / float64(len(cs)); avg >= 0.005 {
				fmt.Fprintf(w, "  %8.2f  %s\n", avg, k)
			}
		}
	}
	band("median band (40th-60th percentile)", cycles[n*40/100:max(n*60/100, n*40/100+1)])
	slow := cycles[min(n*99/100, n-1):]
	band("slowest 1%", slow)
	starts := make([]float64, len(slow))
	for i, c := range slow {
		starts[i] = float64(c.start-first) / 1e6
	}
	slices.Sort(starts)
	fmt.Fprintf(w, "\nslowest 1%% started at (ms into the trace): %.0f\n", starts)
	return nil
}

// traceStall is one entry of the -syscalls timeline.
type traceStall struct {
	at   float64 // ms into the trace
	what string
}

// traceSyscalls lists, in time order, what can hold up a server on one P
// without showing in a CPU profile: system calls of at least minSyscall
// (with the goroutine, what it was doing and the first frames of its
// stack), stretches of at least minIdle in which no goroutine ran, and
// garbage-collection mark phases and stop-the-world pauses with their
// lengths. Session 5 found the checkpoint's WAL sync slowing every other
// system call on the core this way.
func traceSyscalls(r io.Reader, w io.Writer, minSyscall, minIdle time.Duration) error {
	tr, err := trace.NewReader(r)
	if err != nil {
		return err
	}
	var (
		first, idleSince trace.Time
		running          int
		out              []traceStall
		sysStart         = map[trace.GoID]trace.Time{}
		sysSite          = map[trace.GoID]string{}
		ranges           = map[string]trace.Time{}
	)
	ms := func(t trace.Time) float64 { return float64(t-first) / 1e6 }
	for {
		ev, err := tr.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if first == 0 {
			first = ev.Time()
		}
		switch ev.Kind() {
		case trace.EventRangeBegin, trace.EventRangeEnd:
			name := ev.Range().Name
			if name != "GC concurrent mark phase" && !strings.HasPrefix(name, "stop-the-world") {
				continue
			}
			if ev.Kind() == trace.EventRangeBegin {
				ranges[name] = ev.Time()
			} else if t0, ok := ranges[name]; ok {
				out = append(out, traceStall{ms(t0), fmt.Sprintf("%-8s %6.2f ms %s", "range", float64(ev.Time()-t0)/1e6, name)})
				delete(ranges, name)
			}
		case trace.EventStateTransition:
			st := ev.StateTransition()
			if st.Resource.Kind != trace.ResourceGoroutine {
				continue
			}
			id := st.Resource.Goroutine()
			from, to := st.Goroutine()
			if to == trace.GoRunning {
				if running == 0 && idleSince != 0 && time.Duration(ev.Time()-idleSince) >= minIdle {
					out = append(out, traceStall{ms(idleSince), fmt.Sprintf("%-8s %6.2f ms no goroutine running", "idle", float64(ev.Time()-idleSince)/1e6)})
				}
				running++
			}
			if from == trace.GoRunning {
				if running--; running == 0 {
					idleSince = ev.Time()
				}
			}
			switch {
			case to == trace.GoSyscall:
				sysStart[id] = ev.Time()
				sysSite[id] = syscallSite(ev)
			case from == trace.GoSyscall:
				if t0, ok := sysStart[id]; ok && time.Duration(ev.Time()-t0) >= minSyscall {
					out = append(out, traceStall{ms(t0), fmt.Sprintf("%-8s %6.2f ms g%d, then %s: %s", "syscall", float64(ev.Time()-t0)/1e6, id, to, sysSite[id])})
				}
				delete(sysStart, id)
				delete(sysSite, id)
			}
		}
	}
	if first == 0 {
		return errors.New("trace: no events")
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at < out[j].at })
	fmt.Fprintf(w, "system calls >= %v, no goroutine running >= %v, GC marks and stop-the-world pauses (ms into the trace):\n", minSyscall, minIdle)
	for _, o := range out {
		fmt.Fprintf(w, "%9.2f  %s\n", o.at, o.what)
	}
	return nil
}

// syscallSite describes the stack of a goroutine entering a system call:
// the innermost frame (the call itself), then up to five frames outside
// the runtime and syscall packages, innermost first.
func syscallSite(ev trace.Event) string {
	var frames []string
	for f := range ev.Stack().Frames() {
		name := f.Func[strings.LastIndex(f.Func, "/")+1:]
		low := strings.HasPrefix(name, "runtime.") || strings.HasPrefix(name, "syscall.") || strings.HasPrefix(name, "unix.") || strings.HasPrefix(name, "internal/")
		if low && len(frames) > 0 {
			continue
		}
		if frames = append(frames, name); len(frames) == 6 {
			break
		}
	}
	return strings.Join(frames, " < ")
}

func traceCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	syscalls := fs.Bool("syscalls", false, "list long system calls, stretches with no goroutine running and GC pauses, in time order, instead of the request-cycle report")
	minSyscall := fs.Duration("min-syscall", 300*time.Microsecond, "with -syscalls: the shortest system call listed")
	minIdle := fs.Duration("min-idle", 500*time.Microsecond, "with -syscalls: the shortest stretch with no goroutine running listed")
	fs.SetOutput(stdout)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: latchkey-bench trace [-syscalls [-min-syscall D] [-min-idle D]] TRACE (a Go execution trace, e.g. from /debug/pprof/trace)")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	if *syscalls {
		if err := traceSyscalls(f, stdout, *minSyscall, *minIdle); err != nil {
			return fmt.Errorf("trace: %w", err)
		}
		return nil
	}
	cycles, first, err := traceCycles(f)
	if err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	return traceReport(stdout, cycles, first)
}
