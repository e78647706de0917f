package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime/trace"
	"strings"
	"testing"
	"time"
)

// An execution trace of a real HTTP server splits into one cycle per
// request, with the handler's sleep as a wait of its own.
func TestTraceCycles(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Skipf("tracing unavailable: %v", err) // another trace is running (go test -trace)
	}
	const requests = 40
	for range requests {
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			trace.Stop()
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	trace.Stop()

	cycles, first, err := traceCycles(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	// The client side's goroutines have cycles too (waiting for responses).
	if len(cycles) < requests {
		t.Fatalf("%d cycles for %d requests", len(cycles), requests)
	}
	var out strings.Builder
	if err := traceReport(&out, cycles, first); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"request cycles", "median band", "slowest 1%", "run", "wait:sleep"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if err := traceReport(io.Discard, nil, 0); err == nil {
		t.Error("an empty trace gave no error")
	}
}
