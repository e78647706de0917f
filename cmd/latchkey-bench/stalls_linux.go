package main

import "golang.org/x/sys/unix"

// pinThread binds the calling thread (the goroutine must be locked to it)
// to cpu.
func pinThread(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	return unix.SchedSetaffinity(0, &set)
}
