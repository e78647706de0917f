package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"
)

// EnvPprofAddr turns on the profiling listener: a loopback address such as
// 127.0.0.1:6060. It is for measuring the server on the machine it runs on
// (docs/BENCHMARKS.md), never for exposing: any other address is refused,
// and it has its own listener, apart from the public routes.
const EnvPprofAddr = "LATCHKEY_PPROF_ADDR"

// maxProfileSeconds bounds a CPU profile request.
const maxProfileSeconds = 120

// startPprof serves runtime profiles on $LATCHKEY_PPROF_ADDR when it is set:
//
//	/debug/pprof/profile?seconds=N   CPU profile (go tool pprof reads it)
//	/debug/pprof/trace?seconds=N     execution trace (go tool trace reads it)
//	/debug/pprof/heap, allocs, goroutine, mutex, block
//
// It uses runtime/pprof directly rather than importing net/http/pprof, which
// would register handlers on http.DefaultServeMux as a side effect.
func startPprof(lookup env, log *slog.Logger) (stop func(), err error) {
	addr, _ := lookup(EnvPprofAddr)
	if addr == "" {
		return func() {}, nil
	}
	if !loopbackAddr(addr) {
		return nil, fmt.Errorf("%s=%q: must be a loopback address such as 127.0.0.1:6060", EnvPprofAddr, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvPprofAddr, err)
	}
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err != nil || !ap.Addr().Unmap().IsLoopback() {
		ln.Close()
		return nil, fmt.Errorf("%s=%q: listening on %s, which is not loopback", EnvPprofAddr, addr, ln.Addr())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/profile", serveCPUProfile)
	mux.HandleFunc("GET /debug/pprof/trace", serveTrace)
	mux.HandleFunc("GET /debug/pprof/{name}", func(w http.ResponseWriter, r *http.Request) {
		p := pprof.Lookup(r.PathValue("name"))
		if p == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_ = p.WriteTo(w, 0)
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	log.Warn("profiling listener on (loopback only)", slog.String("addr", ln.Addr().String()))
	return func() { hs.Close() }, nil
}

func serveCPUProfile(w http.ResponseWriter, r *http.Request) {
	record(w, r, 30, pprof.StartCPUProfile, pprof.StopCPUProfile)
}

// serveTrace records an execution trace: where goroutines waited to run,
// which is what explains a latency tail that the CPU profile cannot.
func serveTrace(w http.ResponseWriter, r *http.Request) {
	record(w, r, 1, trace.Start, trace.Stop)
}

// record runs start(w) for ?seconds= (default def, at most
// maxProfileSeconds) or until the client goes away, then stop.
func record(w http.ResponseWriter, r *http.Request, def int, start func(io.Writer) error, stop func()) {
	sec, err := strconv.Atoi(r.URL.Query().Get("seconds"))
	if err != nil || sec <= 0 {
		sec = def
	}
	sec = min(sec, maxProfileSeconds)
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := start(w); err != nil {
		// Another profile or trace is running.
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	select {
	case <-time.After(time.Duration(sec) * time.Second):
	case <-r.Context().Done():
	}
	stop()
}

// loopbackAddr reports whether host:port names a loopback host.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
