package server

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/latchkey-dev/latchkey/internal/arrival"
	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/httpx"
	"github.com/latchkey-dev/latchkey/internal/store/sqlstore"
)

// HTTPServer is *http.Server or *arrival.Server: what serves a listener.
type HTTPServer interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// NewHTTPServer returns a net/http server with the timeouts and limits
// every listener uses.
func NewHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// NewPublicServer returns the public listener's server: arrival order
// where it runs (http_order, internal/arrival), with NewHTTPServer's limits
// and timeouts; net/http otherwise. The tests' servers (testserver) are
// built here too, so every end-to-end test goes through the server
// production runs.
func NewPublicServer(cfg config.Config, h http.Handler, log *slog.Logger) HTTPServer {
	hs := NewHTTPServer(h, log)
	if cfg.HTTPOrder != "arrival" || runtime.GOOS != "linux" {
		return hs
	}
	return &arrival.Server{
		Handler:           h,
		Workers:           httpWorkers(cfg),
		ReadHeaderTimeout: hs.ReadHeaderTimeout,
		ReadTimeout:       hs.ReadTimeout,
		WriteTimeout:      hs.WriteTimeout,
		IdleTimeout:       hs.IdleTimeout,
		MaxHeaderBytes:    hs.MaxHeaderBytes,
		// Above the handlers' own limit, so that a body a little too large
		// still gets their OAuth error, not the server's plain 413.
		MaxBodyBytes: 2 * httpx.MaxFormBytes,
		Log:          log,
	}
}

// PostgresWorkersPerCore is http_workers' default per core on PostgreSQL.
// There a request waits for network round trips and its group commit is a
// pipeline of every write waiting at the time: with 8 workers per core
// (SQLite's default), 64 clients got 36 % fewer grants/s than net/http's
// goroutine per connection; with 64 the same; with 32, 22 % fewer
// (docs/BENCHMARKS.md, session 9). Enough per core to fill the write
// queue's largest batch (128).
const PostgresWorkersPerCore = sqlstore.MaxWriteBatch

// httpWorkers is cfg's http_workers, or its default for the database.
func httpWorkers(cfg config.Config) int {
	if cfg.HTTPWorkers > 0 || !sqlstore.IsPostgres(cfg.Database) {
		return cfg.HTTPWorkers // 0: arrival.WorkersPerCore per core
	}
	return min(PostgresWorkersPerCore*runtime.GOMAXPROCS(0), config.MaxHTTPWorkers)
}

// HTTPOrder names the order hs serves requests in, for the start-up log:
// "arrival" or "goroutine" (net/http's, also where "arrival" was asked for
// but does not run).
func HTTPOrder(hs HTTPServer) string {
	if _, ok := hs.(*arrival.Server); ok {
		return "arrival"
	}
	return "goroutine"
}
