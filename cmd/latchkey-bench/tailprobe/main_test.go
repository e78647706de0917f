package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Every mode serves the probe's answer and the load generator measures it.
func TestModes(t *testing.T) {
	for _, mode := range []string{"nethttp", "loop-et", "loop-lt", "loop-pool"} {
		t.Run(mode, func(t *testing.T) {
			addr := freeAddr(t)
			stop, err := start(mode, addr, func() { burn(50 * time.Microsecond) }, 4096)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			r, err := measure("http://"+addr+"/", 4, 300*time.Millisecond, 50*time.Millisecond) // start has bound addr
			if err != nil {
				t.Fatal(err)
			}
			if r.n == 0 || r.p50 <= 0 || r.p99 < r.p50 || r.p90 < r.p50 || r.max < r.p99 {
				t.Fatalf("implausible result %+v", r)
			}
			if s := r.String(); !strings.Contains(s, "p99/p50") {
				t.Fatalf("report %q", s)
			}
		})
	}
}

func TestStartUnknownMode(t *testing.T) {
	if _, err := start("threads", freeAddr(t), func() {}, 0); err == nil || !strings.Contains(err.Error(), "unknown mode") {
		t.Fatalf("err = %v", err)
	}
}

func TestMeasureReportsServerErrors(t *testing.T) {
	if _, err := measure("http://"+freeAddr(t)+"/", 1, 100*time.Millisecond, 0); err == nil {
		t.Fatal("no error from a closed port")
	}
	if _, err := measure("http://x/", 0, time.Second, 0); err == nil {
		t.Fatal("no error for c=0")
	}
}

func TestAllocate(t *testing.T) {
	keepLive(1)
	n := 0
	for p := live; p != nil; p = p.next {
		n++
	}
	if want := 1 << 20 / int(unsafe.Sizeof(node{})); n != want {
		t.Fatalf("live objects = %d, want %d", n, want)
	}
	allocate(960)
	n = 0
	for p := sink.Load(); p != nil; p = p.next {
		n++
	}
	if n != 10 {
		t.Fatalf("garbage objects = %d, want 10", n)
	}
}

// worker's kinds: "time" burns at least the wall-clock time it is given,
// "fixed" calibrates a positive amount of work, and anything else is
// refused.
func TestWorker(t *testing.T) {
	w, err := worker("time", 2*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	w()
	if el := time.Since(start); el < 2*time.Millisecond {
		t.Fatalf("time burn took %v, want at least 2ms", el)
	}
	if w, err = worker("fixed", 200*time.Microsecond); err != nil {
		t.Fatal(err)
	}
	w()
	if _, err := worker("spin", time.Millisecond); err == nil || !strings.Contains(err.Error(), "unknown burn") {
		t.Fatalf("err = %v", err)
	}
}

// Concurrent commits all return once their bytes are written and synced:
// the file holds every request's bytes (in fewer writes than requests
// when they overlap), and a bad size is refused.
func TestGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal")
	g, err := newGroupCommit(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if err := g.commit(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	g.close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != groupCommitWrap {
		t.Fatalf("file size %d, want %d (preallocated)", len(b), groupCommitWrap)
	}
	if n := bytes.Count(b, []byte{'w'}); n != 50*100 {
		t.Fatalf("%d bytes committed, want %d", n, 50*100)
	}
	for _, n := range []int{0, 1<<20 + 1} {
		if _, err := newGroupCommit(path, n); err == nil {
			t.Fatalf("size %d accepted", n)
		}
	}
}
