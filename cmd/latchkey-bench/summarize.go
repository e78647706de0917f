package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"text/tabwriter"
)

// summarize reads -json results and prints, for each (label, mode,
// workers), the median of each figure over the runs.
func summarize(files []string, w io.Writer) error {
	if len(files) == 0 {
		return errors.New("summarize: no result files")
	}
	type key struct {
		label, mode string
		workers     int
	}
	groups := map[key][]*report{}
	var order []key
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var r report
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		k := key{r.Label, r.Mode, r.Workers}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], &r)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "label\tmode\tc\truns\tgrants/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\tserver ms CPU/grant\textra ms CPU/grant\tfailed\tother cores\tpeak RSS MiB\t")
	for _, k := range order {
		rs := groups[k]
		med := func(f func(*report) float64) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			return median(v)
		}
		lat := func(f func(*latency) float64) func(*report) float64 {
			return func(r *report) float64 {
				if r.Latency == nil {
					return 0
				}
				return f(r.Latency)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t%.3f\t%.3f\t%.0f\t%.2f\t%.1f\t\n", k.label, k.mode, k.workers, len(rs),
			med(func(r *report) float64 { return r.PerSecond }),
			med(lat(func(l *latency) float64 { return l.P50 })), med(lat(func(l *latency) float64 { return l.P90 })),
			med(lat(func(l *latency) float64 { return l.P99 })), med(lat(func(l *latency) float64 { return l.Max })),
			med(func(r *report) float64 { return r.ServerCPUMsPerGrant }),
			med(func(r *report) float64 { return r.ExtraCPUMsPerGrant }),
			med(func(r *report) float64 { return float64(r.Failed) }),
			med(func(r *report) float64 { return r.OtherCores }),
			med(func(r *report) float64 { return r.ServerPeakRSSMiB }))
	}
	return tw.Flush()
}

// median of v (the mean of the middle two for an even count).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}
