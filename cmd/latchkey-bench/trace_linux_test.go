package main

import (
	"bytes"
	"runtime"
	"runtime/trace"
	"strings"
	"syscall"
	"testing"
	"time"
)

// -syscalls lists a 2 ms system call with where it was made, and a
// collection's mark phase.
func TestTraceSyscalls(t *testing.T) {
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Skipf("tracing unavailable: %v", err) // another trace is running (go test -trace)
	}
	slowSyscall()
	runtime.GC()
	trace.Stop()

	var out strings.Builder
	if err := traceSyscalls(bytes.NewReader(buf.Bytes()), &out, time.Millisecond, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var sys string
	for line := range strings.Lines(out.String()) {
		if strings.Contains(line, "slowSyscall") {
			sys = line
		}
	}
	if !strings.Contains(sys, "syscall ") || !strings.Contains(sys, "Nanosleep") {
		t.Errorf("no line for the 2 ms system call:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "GC concurrent mark phase") {
		t.Errorf("no line for the collection:\n%s", out.String())
	}
	if err := traceSyscalls(strings.NewReader(""), &out, 0, 0); err == nil {
		t.Error("an empty trace gave no error")
	}
}

//go:noinline
func slowSyscall() {
	ts := syscall.Timespec{Nsec: int64(2 * time.Millisecond)}
	_ = syscall.Nanosleep(&ts, nil)
}
