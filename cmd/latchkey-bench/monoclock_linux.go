package main

import "golang.org/x/sys/unix"

// monotonicNow reads CLOCK_MONOTONIC, the clock `perf record -k
// CLOCK_MONOTONIC` stamps kernel events with, in nanoseconds.
func monotonicNow() (int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, err
	}
	return ts.Nano(), nil
}
