package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestPprofListener(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	envOf := func(v string) env {
		return func(k string) (string, bool) {
			if k == EnvPprofAddr {
				return v, v != ""
			}
			return "", false
		}
	}
	stop, err := startPprof(envOf(""), log)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	for _, bad := range []string{":6060", "0.0.0.0:6060", "10.0.0.1:6060", "[::]:6060", "example.com:6060", "6060"} {
		if _, err := startPprof(envOf(bad), log); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("%s: got %v, want a loopback refusal", bad, err)
		}
	}
	if !loopbackAddr("127.0.0.1:0") || !loopbackAddr("[::1]:1") || !loopbackAddr("localhost:1") {
		t.Error("loopback addresses refused")
	}
}

func TestPprofServesProfiles(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	addr := freeLoopbackAddr(t)
	stop, err := startPprof(func(k string) (string, bool) { return addr, k == EnvPprofAddr }, log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for path, want := range map[string]int{"/debug/pprof/goroutine": 200, "/debug/pprof/nope": 404, "/debug/pprof/profile?seconds=1": 200} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (want == 200 && len(b) == 0) {
			t.Errorf("%s: %d (%d bytes), want %d", path, resp.StatusCode, len(b), want)
		}
	}
}

// freeLoopbackAddr returns a loopback address with a port that was free a
// moment ago.
func freeLoopbackAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
