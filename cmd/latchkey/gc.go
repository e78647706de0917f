package main

import (
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Garbage-collector settings of `latchkey serve` (docs/deployment.md,
// "Garbage collection"). A refresh grant allocates ~37 KB (a third of it
// in the two ECDSA signatures), so with Go's default GOGC=100 and a live heap
// of ~10 MB the collector ran every few hundred requests and took ~15 % of
// the server's CPU. GOGC=400 collects a quarter as often; a soft memory
// limit keeps the heap, and the process's memory, bounded: at least
// serveGCMinLimit, and serveGCHeadroom times the live heap as that grows,
// so a large live heap (many connections) never makes the collector run
// more often than the default would (GOGC=100: twice the live heap).
//
// The limit counts only Go's memory. The process also holds SQLite's page
// caches (~10 MiB, outside Go's heap) and the binary's mapped text (~20
// MiB), and a burst of sign-ins allocates 19 MiB per argon2id hash: with
// a floor of 64 MiB and four times the live heap, peak RSS reached
// 113-119 MiB in the code-flow benchmark. 40 MiB, three times the live
// heap, and the smallest live heap of the last 15 s (serveGCWindow) kept it
// at 62-79 MiB (docs/BENCHMARKS.md, session 6).
const (
	serveGCPercent  = 400
	serveGCMinLimit = 40 << 20
	serveGCHeadroom = 3
	serveGCRetune   = 5 * time.Second
	// serveGCWindow is how many retune periods the live heap must stay
	// high before the limit follows it: a sign-in holds a 19 MiB argon2id
	// buffer while it hashes, so a collection that marks during one reports
	// that much more live heap for a moment. The limit follows the smallest
	// of the last serveGCWindow readings, so such a spike does not raise
	// it; a lasting rise does, within serveGCWindow × serveGCRetune.
	serveGCWindow = 3
)

// serveGCLimit is the soft memory limit for a live heap of live bytes.
func serveGCLimit(live uint64) int64 {
	return max(serveGCMinLimit, int64(serveGCHeadroom*live))
}

// tuneGC applies the settings above unless the GOGC or GOMEMLIMIT
// environment variable is set (the operator's choice wins), and adjusts the
// memory limit to the live heap every serveGCRetune until stop is called.
func tuneGC(getenv func(string) string) (stop func()) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	debug.SetGCPercent(serveGCPercent)
	debug.SetMemoryLimit(serveGCMinLimit)
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(serveGCRetune)
		defer t.Stop()
		live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		var w liveWindow
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			metrics.Read(live)
			if live[0].Value.Kind() == metrics.KindUint64 {
				debug.SetMemoryLimit(serveGCLimit(w.add(live[0].Value.Uint64())))
			}
		}
	}()
	return func() { close(done); <-exited }
}

// liveWindow keeps the last serveGCWindow live-heap readings.
type liveWindow struct {
	last [serveGCWindow]uint64
	n    int // readings so far
}

// add records a reading and returns the smallest of the last serveGCWindow
// readings (of all of them while there are fewer).
func (w *liveWindow) add(live uint64) uint64 {
	w.last[w.n%serveGCWindow] = live
	w.n++
	low := live
	for _, v := range w.last[:min(w.n, serveGCWindow)] {
		low = min(low, v)
	}
	return low
}
