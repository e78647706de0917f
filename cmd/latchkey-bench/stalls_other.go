//go:build !linux

package main

import "errors"

// pinThread: pinning a thread to a CPU is done with Linux's
// sched_setaffinity; elsewhere stalls runs with -cpu -1 only.
func pinThread(cpu int) error {
	return errors.New("pinning to a CPU needs Linux (use -cpu -1 -busy -1)")
}
