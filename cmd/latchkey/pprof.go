package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/latchkey-dev/latchkey/internal/profiling"
)

// EnvPprofAddr turns on the profiling listener: a loopback address such as
// 127.0.0.1:6060. It is for measuring the server on the machine it runs on
// (docs/BENCHMARKS.md), never for exposing: any other address is refused,
// and it has its own listener, apart from the public routes.
const EnvPprofAddr = "LATCHKEY_PPROF_ADDR"

// startPprof serves runtime profiles (internal/profiling) on
// $LATCHKEY_PPROF_ADDR when it is set, without a token: the address must be
// loopback. For profiling a server from elsewhere, admin_pprof serves the
// same profiles on the admin listener, behind its token.
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
	hs := &http.Server{Handler: profiling.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	log.Warn("profiling listener on (loopback only)", slog.String("addr", ln.Addr().String()))
	return func() { hs.Close() }, nil
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
