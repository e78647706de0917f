package sqlstore

import (
	"runtime"
	"sync"
	"testing"
)

// withIOProc raises GOMAXPROCS by one while any caller holds it and puts it
// back after the last one. Other tests' checkpointers may hold it too, so
// the expectation is read under the same lock.
func TestWithIOProc(t *testing.T) {
	base := func() int {
		ioProcs.Lock()
		defer ioProcs.Unlock()
		if ioProcs.depth > 0 {
			return ioProcs.prev
		}
		return runtime.GOMAXPROCS(0)
	}
	check := func(want int) {
		t.Helper()
		ioProcs.Lock()
		got, depth := runtime.GOMAXPROCS(0), ioProcs.depth
		ioProcs.Unlock()
		if depth > 0 {
			want++
		}
		if got != want {
			t.Errorf("GOMAXPROCS %d with %d holders, want %d", got, depth, want)
		}
	}
	n := base()
	release := withIOProc()
	check(n)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			r := withIOProc()
			check(n)
			r()
		})
	}
	wg.Wait()
	check(n)
	release()
	check(n)
}
