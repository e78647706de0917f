// Package profiling serves the Go runtime's profiles over HTTP: a CPU
// profile and an execution trace recorded for ?seconds=N, and the named
// profiles (heap, allocs, goroutine, mutex, block, threadcreate). Two
// places serve them: `serve`'s loopback-only listener (LATCHKEY_PPROF_ADDR,
// for benchmarks on the server's own machine) and, when admin_pprof is on,
// the admin listener behind its bearer token (docs/observability.md).
//
// It uses runtime/pprof directly rather than importing net/http/pprof,
// which would register handlers on http.DefaultServeMux as a side effect.
// A profile holds function names, stacks and allocation sites, never the
// contents of memory: no token or secret can be in one.
package profiling

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"time"
)

// MaxSeconds bounds a CPU profile or trace request.
const MaxSeconds = 120

// Default recording times: a CPU profile needs seconds of samples (100 a
// second); a trace of a busy server grows by megabytes a second.
const (
	DefaultCPUSeconds   = 30
	DefaultTraceSeconds = 1
)

var (
	// ErrBusy is returned when another CPU profile or trace is running
	// (the runtime records one of each at a time). Nothing was written.
	ErrBusy = errors.New("another CPU profile or execution trace is being recorded; try again when it ends")
	// ErrUnknown is returned for a profile name the runtime does not have.
	ErrUnknown = errors.New("no such profile")
	// ErrSeconds is returned for a seconds parameter that is not a whole
	// number from 1 to MaxSeconds.
	ErrSeconds = fmt.Errorf("seconds must be a whole number from 1 to %d", MaxSeconds)
)

// CPU records a CPU profile for ?seconds= (DefaultCPUSeconds when absent)
// into w, or until the client goes away. It returns ErrSeconds or ErrBusy
// before writing anything.
func CPU(w http.ResponseWriter, r *http.Request) error {
	return record(w, r, DefaultCPUSeconds, pprof.StartCPUProfile, pprof.StopCPUProfile)
}

// Trace records an execution trace (where goroutines waited to run, which
// explains a latency tail that a CPU profile cannot) like CPU.
func Trace(w http.ResponseWriter, r *http.Request) error {
	return record(w, r, DefaultTraceSeconds, trace.Start, trace.Stop)
}

// Named writes the runtime profile called name (pprof.Lookup) in its
// binary form, or returns ErrUnknown before writing anything.
func Named(w http.ResponseWriter, name string) error {
	p := pprof.Lookup(name)
	if p == nil {
		return fmt.Errorf("%w %q (heap, allocs, goroutine, mutex, block, threadcreate)", ErrUnknown, name)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	return p.WriteTo(w, 0)
}

// Seconds parses ?seconds=: def when absent, ErrSeconds when not a whole
// number from 1 to MaxSeconds.
func Seconds(r *http.Request, def int) (int, error) {
	v := r.URL.Query().Get("seconds")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxSeconds {
		return 0, ErrSeconds
	}
	return n, nil
}

// record runs start(w) for ?seconds= or until the client goes away, then
// stop. The listener's write timeout (30 s on the admin listener) would cut
// a longer recording, so the write deadline is moved past its end.
func record(w http.ResponseWriter, r *http.Request, def int, start func(io.Writer) error, stop func()) error {
	sec, err := Seconds(r, def)
	if err != nil {
		return err
	}
	d := time.Duration(sec) * time.Second
	// Not every ResponseWriter supports deadlines (httptest's recorder
	// does not); the recording then relies on the server's own timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d + 30*time.Second))
	// Headers first: start hands w to a goroutine of the runtime that
	// writes (and so sends the headers) while this one waits. An error
	// answer replaces the Content-Type.
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	if err := start(w); err != nil {
		return ErrBusy
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
	stop()
	return nil
}

// Handler serves the profiles under /debug/pprof/ with plain-text errors:
// the loopback listener's handler, which has no other routes.
func Handler() http.Handler {
	mux := http.NewServeMux()
	plain := func(fn func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if err := fn(w, r); err != nil {
				http.Error(w, err.Error(), Status(err))
			}
		}
	}
	mux.Handle("GET /debug/pprof/profile", plain(CPU))
	mux.Handle("GET /debug/pprof/trace", plain(Trace))
	mux.Handle("GET /debug/pprof/{name}", plain(func(w http.ResponseWriter, r *http.Request) error {
		return Named(w, r.PathValue("name"))
	}))
	return mux
}

// Status is the HTTP status for an error of this package: 400 for a bad
// seconds parameter, 404 for an unknown profile, 409 when busy, 500 for
// anything else (a failed write, after the status was sent).
func Status(err error) int {
	switch {
	case errors.Is(err, ErrSeconds):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnknown):
		return http.StatusNotFound
	case errors.Is(err, ErrBusy):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}
