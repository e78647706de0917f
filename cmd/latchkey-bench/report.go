package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// latency is a latency distribution in milliseconds.
type latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// percentile is the nearest-rank percentile of sorted d.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func distribution(d []time.Duration) *latency {
	if len(d) == 0 {
		return nil
	}
	slices.Sort(d)
	var sum time.Duration
	for _, v := range d {
		sum += v
	}
	ms := func(v time.Duration) float64 { return math.Round(float64(v)/float64(time.Millisecond)*1000) / 1000 }
	return &latency{
		P50: ms(percentile(d, 0.50)), P90: ms(percentile(d, 0.90)), P99: ms(percentile(d, 0.99)),
		Max: ms(d[len(d)-1]), Mean: ms(sum / time.Duration(len(d))),
	}
}

// report is the outcome of a run; its JSON form is the -json output.
type report struct {
	Label         string  `json:"label,omitempty"`
	Mode          string  `json:"mode"`
	Issuer        string  `json:"issuer"`
	Endpoint      string  `json:"endpoint"`
	Workers       int     `json:"workers"`
	Tokens        int     `json:"tokens,omitempty"`
	WarmupSeconds float64 `json:"warmup_seconds"`
	Seconds       float64 `json:"measured_seconds"`
	// Requests counts every request that started in the window; OK the
	// successful grants (or introspections); PerSecond is OK / Seconds.
	Requests  int64    `json:"requests"`
	OK        int64    `json:"ok"`
	Failed    int64    `json:"failed"`
	PerSecond float64  `json:"grants_per_second"`
	Latency   *latency `json:"latency,omitempty"`
	// IterationLatency (code mode): authorization request + code exchange.
	IterationLatency *latency          `json:"iteration_latency,omitempty"`
	Errors           map[string]int64  `json:"errors"`
	ErrorExamples    map[string]string `json:"error_examples,omitempty"`
	// WorkersOutOfTokens: workers that stopped because every one of their
	// families was refused.
	WorkersOutOfTokens int `json:"workers_out_of_tokens,omitempty"`

	ServerPIDs       []int   `json:"server_pids,omitempty"`
	ServerCPUSeconds float64 `json:"server_cpu_seconds,omitempty"`
	ServerCores      float64 `json:"server_cores,omitempty"`
	// ServerCPUMsPerGrant is also the server's CPU-seconds per 1,000 grants.
	ServerCPUMsPerGrant float64 `json:"server_cpu_ms_per_grant,omitempty"`
	ExtraPIDs           []int   `json:"extra_pids,omitempty"`
	ExtraCPUSeconds     float64 `json:"extra_cpu_seconds,omitempty"`
	ExtraCPUMsPerGrant  float64 `json:"extra_cpu_ms_per_grant,omitempty"`
	// ToolCores is this tool's own CPU use; OtherCores is the rest of the
	// machine's (busy minus server, extra and tool), which should be near 0
	// for a clean measurement.
	ToolCores    float64 `json:"tool_cores"`
	MachineCores float64 `json:"machine_busy_cores"`
	OtherCores   float64 `json:"other_cores"`
	// ServerRSSMiB is the server's resident memory at the end (VmRSS);
	// ServerPeakRSSMiB the most it ever had (VmHWM), both summed over -pid.
	ServerRSSMiB     float64 `json:"server_rss_mib,omitempty"`
	ServerPeakRSSMiB float64 `json:"server_peak_rss_mib,omitempty"`
	// Intervals (with -interval): the window, one entry per interval.
	Intervals []interval `json:"intervals,omitempty"`
}

// interval is one slice of a long run.
type interval struct {
	At           float64 `json:"at_seconds"` // end of the interval, from the window's start
	PerSecond    float64 `json:"grants_per_second"`
	ServerCores  float64 `json:"server_cores,omitempty"`
	ServerRSSMiB float64 `json:"server_rss_mib,omitempty"`
}

func (rep *report) setMem(pids []int) {
	if len(pids) == 0 {
		return
	}
	rss, peak := memOf(pids)
	rep.ServerRSSMiB, rep.ServerPeakRSSMiB = round(float64(rss)/(1<<20), 1), round(float64(peak)/(1<<20), 1)
}

func newReport(r *runner, results []*result) *report {
	rep := &report{
		Label: r.o.label, Mode: r.o.mode, Issuer: r.o.issuer, Endpoint: r.m.TokenEndpoint, Workers: r.o.concurrency,
		WarmupSeconds: r.o.warmup.Seconds(), Errors: map[string]int64{}, ErrorExamples: map[string]string{},
	}
	if r.o.mode != "code" {
		rep.Tokens = r.o.tokens
	}
	if r.o.mode == "introspect" {
		rep.Endpoint = r.m.IntrospectionEndpoint
	}
	var lat, iter []time.Duration
	last := r.start
	for _, res := range results {
		lat, iter = append(lat, res.lat...), append(iter, res.iter...)
		rep.OK += res.ok
		for k, n := range res.errs {
			rep.Errors[k] += n
			rep.Failed += n
			if _, ok := rep.ErrorExamples[k]; !ok && res.examples[k] != "" {
				rep.ErrorExamples[k] = res.examples[k]
			}
		}
		if res.lastDone.After(last) {
			last = res.lastDone
		}
		if res.outOfTokens {
			rep.WorkersOutOfTokens++
		}
	}
	rep.Requests = rep.OK + rep.Failed
	rep.Seconds = last.Sub(r.start).Seconds()
	if rep.Seconds > 0 {
		rep.PerSecond = round(float64(rep.OK)/rep.Seconds, 1)
	}
	rep.Seconds = round(rep.Seconds, 3)
	rep.Latency, rep.IterationLatency = distribution(lat), distribution(iter)
	return rep
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func (rep *report) setCPU(pids []int, server time.Duration, extra []int, extraCPU, tool, busy, total time.Duration) {
	wall := rep.Seconds
	if wall <= 0 {
		return
	}
	rep.ServerPIDs, rep.ExtraPIDs = pids, extra
	perGrant := func(d time.Duration) float64 {
		if rep.OK == 0 {
			return 0
		}
		return round(d.Seconds()*1000/float64(rep.OK), 3)
	}
	if len(pids) > 0 {
		rep.ServerCPUSeconds = round(server.Seconds(), 2)
		rep.ServerCores = round(server.Seconds()/wall, 2)
		rep.ServerCPUMsPerGrant = perGrant(server)
	}
	if len(extra) > 0 {
		rep.ExtraCPUSeconds = round(extraCPU.Seconds(), 2)
		rep.ExtraCPUMsPerGrant = perGrant(extraCPU)
	}
	rep.ToolCores = round(tool.Seconds()/wall, 2)
	rep.MachineCores = round(busy.Seconds()/wall, 2)
	rep.OtherCores = round(max(busy-server-extraCPU-tool, 0).Seconds()/wall, 2)
	_ = total
}

func (rep *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func (rep *report) writeText(w io.Writer) {
	what := map[string]string{"refresh": "refresh grants", "code": "code exchanges", "introspect": "introspections"}[rep.Mode]
	fmt.Fprintf(w, "%s against %s\n", what, rep.Endpoint)
	fmt.Fprintf(w, "  workers %d", rep.Workers)
	if rep.Tokens > 0 {
		fmt.Fprintf(w, ", tokens %d", rep.Tokens)
	}
	fmt.Fprintf(w, ", warm-up %gs, measured %.2fs\n", rep.WarmupSeconds, rep.Seconds)
	fmt.Fprintf(w, "  throughput  %.1f/s  (%d ok, %d failed)\n", rep.PerSecond, rep.OK, rep.Failed)
	if l := rep.Latency; l != nil {
		fmt.Fprintf(w, "  latency     p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms  mean %.2f ms\n", l.P50, l.P90, l.P99, l.Max, l.Mean)
	}
	if l := rep.IterationLatency; l != nil {
		fmt.Fprintf(w, "  iteration   p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms  (authorize + exchange)\n", l.P50, l.P90, l.P99, l.Max)
	}
	if len(rep.Errors) == 0 {
		fmt.Fprintln(w, "  errors      none")
	} else {
		fmt.Fprintln(w, "  errors")
		for _, k := range slices.Sorted(maps.Keys(rep.Errors)) {
			fmt.Fprintf(w, "    %8d  %s", rep.Errors[k], k)
			if ex := rep.ErrorExamples[k]; ex != "" {
				fmt.Fprintf(w, "  (%s)", strings.ReplaceAll(ex, "\n", " "))
			}
			fmt.Fprintln(w)
		}
	}
	if rep.WorkersOutOfTokens > 0 {
		fmt.Fprintf(w, "  %d workers stopped early: all their refresh tokens were refused\n", rep.WorkersOutOfTokens)
	}
	if len(rep.ServerPIDs) > 0 {
		fmt.Fprintf(w, "  server CPU  %.2f s = %.2f cores → %.3f ms CPU per grant (= CPU-seconds per 1,000 grants)  [pid %v]\n",
			rep.ServerCPUSeconds, rep.ServerCores, rep.ServerCPUMsPerGrant, rep.ServerPIDs)
	}
	if rep.ServerRSSMiB > 0 {
		fmt.Fprintf(w, "  server RSS  %.1f MiB at the end, peak %.1f MiB\n", rep.ServerRSSMiB, rep.ServerPeakRSSMiB)
	}
	for _, iv := range rep.Intervals {
		fmt.Fprintf(w, "  at %6.0fs  %8.1f/s  server %.2f cores  RSS %.1f MiB\n", iv.At, iv.PerSecond, iv.ServerCores, iv.ServerRSSMiB)
	}
	if len(rep.ExtraPIDs) > 0 {
		fmt.Fprintf(w, "  extra CPU   %.2f s → %.3f ms per grant  [%d processes matching -cpu-match]\n", rep.ExtraCPUSeconds, rep.ExtraCPUMsPerGrant, len(rep.ExtraPIDs))
	}
	fmt.Fprintf(w, "  machine     %.2f cores busy: this tool %.2f, other processes %.2f\n", rep.MachineCores, rep.ToolCores, rep.OtherCores)
}
