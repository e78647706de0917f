//go:build !linux

package main

import "errors"

// monotonicNow: -dump lines requests up with a Linux kernel trace (perf);
// elsewhere there is nothing to line them up with.
func monotonicNow() (int64, error) {
	return 0, errors.New("-dump needs Linux (CLOCK_MONOTONIC, as perf record -k CLOCK_MONOTONIC stamps events)")
}
