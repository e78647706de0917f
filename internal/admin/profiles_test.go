package admin_test

import (
	"bytes"
	"io"
	"runtime/pprof"
	"runtime/trace"
	"sync"
	"testing"

	"github.com/latchkey-dev/latchkey/internal/admin"
)

// recording serializes the tests that record a CPU profile or an execution
// trace: the runtime records one of each at a time per process.
var recording sync.Mutex

func TestAdminProfiles(t *testing.T) {
	a, _, _ := start(t, startOpts{engine: "sqlite"})
	gzipped := []byte{0x1f, 0x8b}

	for _, name := range []string{"heap", "allocs", "goroutine", "mutex", "block", "threadcreate"} {
		if b := a.call("GET", "/debug/pprof/"+name, nil).want(t, 200).body; !bytes.HasPrefix(b, gzipped) {
			t.Errorf("%s: not a gzipped pprof profile: % x", name, b[:min(len(b), 8)])
		}
	}
	for _, path := range []string{"/debug/pprof/heap", "/debug/pprof/profile?seconds=1", "/debug/pprof/trace?seconds=1"} {
		if p := a.call("GET", path, nil, noToken).want(t, 401).problem(t); p.Type != admin.ProblemTypePrefix+"unauthorized" {
			t.Errorf("%s without a token: %+v", path, p)
		}
	}
	if p := a.call("GET", "/debug/pprof/nope", nil).want(t, 404).problem(t); p.Type != admin.ProblemTypePrefix+"not-found" {
		t.Errorf("unknown profile: %+v", p)
	}
	for _, q := range []string{"0", "-1", "121", "1.5", "abc"} {
		for _, kind := range []string{"profile", "trace"} {
			r := a.call("GET", "/debug/pprof/"+kind+"?seconds="+q, nil, invalidRequest).want(t, 400)
			if p := r.problem(t); p.Type != admin.ProblemTypePrefix+"invalid-input" {
				t.Errorf("%s?seconds=%s: %+v", kind, q, p)
			}
		}
	}

	recording.Lock()
	defer recording.Unlock()
	if b := a.call("GET", "/debug/pprof/profile?seconds=1", nil).want(t, 200).body; !bytes.HasPrefix(b, gzipped) {
		t.Errorf("CPU profile: not a gzipped pprof profile: % x", b[:min(len(b), 8)])
	}
	if b := a.call("GET", "/debug/pprof/trace?seconds=1", nil).want(t, 200).body; !bytes.HasPrefix(b, []byte("go 1.")) {
		t.Errorf("trace: no execution trace header: %q", b[:min(len(b), 16)])
	}

	// One of each at a time: a recording already running → 409, and it
	// is not disturbed.
	if err := pprof.StartCPUProfile(io.Discard); err != nil {
		t.Fatal(err)
	}
	p := a.call("GET", "/debug/pprof/profile?seconds=1", nil).want(t, 409).problem(t)
	pprof.StopCPUProfile()
	if p.Type != admin.ProblemTypePrefix+"conflict" {
		t.Errorf("busy CPU profile: %+v", p)
	}
	if err := trace.Start(io.Discard); err != nil {
		t.Fatal(err)
	}
	p = a.call("GET", "/debug/pprof/trace?seconds=1", nil).want(t, 409).problem(t)
	trace.Stop()
	if p.Type != admin.ProblemTypePrefix+"conflict" {
		t.Errorf("busy trace: %+v", p)
	}
}

// Off by default (admin_pprof false): the paths are unknown endpoints, with
// or without the token.
func TestAdminProfilesOff(t *testing.T) {
	a, _, _ := start(t, startOpts{engine: "sqlite", noProfiles: true})
	for _, path := range []string{"/debug/pprof/heap", "/debug/pprof/profile?seconds=1", "/debug/pprof/trace?seconds=1"} {
		if p := a.call("GET", path, nil).want(t, 404).problem(t); p.Type != admin.ProblemTypePrefix+"not-found" {
			t.Errorf("%s with admin_pprof off: %+v", path, p)
		}
	}
}
