package server

import (
	"log/slog"
	"net/http"
	"runtime"
	"testing"

	"github.com/latchkey-dev/latchkey/internal/arrival"
	"github.com/latchkey-dev/latchkey/internal/config"
)

func TestNewPublicServer(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	h := http.NotFoundHandler()
	cfg := config.Default()
	if cfg.HTTPOrder != "arrival" {
		t.Fatalf("default http_order %q, want arrival", cfg.HTTPOrder)
	}
	hs := NewPublicServer(cfg, h, log)
	if runtime.GOOS == "linux" {
		a, ok := hs.(*arrival.Server)
		if !ok || HTTPOrder(hs) != "arrival" {
			t.Fatalf("default on Linux: %T, want *arrival.Server", hs)
		}
		// The same limits and timeouts as the net/http servers.
		std := NewHTTPServer(h, log)
		if a.ReadHeaderTimeout != std.ReadHeaderTimeout || a.ReadTimeout != std.ReadTimeout || a.WriteTimeout != std.WriteTimeout ||
			a.IdleTimeout != std.IdleTimeout || a.MaxHeaderBytes != std.MaxHeaderBytes || a.MaxBodyBytes <= 0 {
			t.Errorf("arrival server's limits %+v differ from net/http's", a)
		}
	} else if _, ok := hs.(*http.Server); !ok {
		t.Fatalf("default off Linux: %T, want *http.Server (fallback)", hs)
	}
	cfg.HTTPOrder = "goroutine"
	if hs := NewPublicServer(cfg, h, log); HTTPOrder(hs) != "goroutine" {
		t.Fatalf("http_order goroutine: %T", hs)
	}
	cfg.HTTPOrder, cfg.HTTPWorkers = "arrival", 3
	if a, ok := NewPublicServer(cfg, h, log).(*arrival.Server); ok && a.Workers != 3 {
		t.Errorf("http_workers 3: Workers %d", a.Workers)
	}
	// 0 is the database's default: arrival's per-core default on SQLite,
	// enough on PostgreSQL to fill its pipelined group commits.
	cfg.HTTPWorkers = 0
	if a, ok := NewPublicServer(cfg, h, log).(*arrival.Server); ok && a.Workers != 0 {
		t.Errorf("http_workers 0 on SQLite: Workers %d, want 0 (arrival.WorkersPerCore per core)", a.Workers)
	}
	cfg.Database = "postgres://postgres@127.0.0.1:5432/test"
	want := min(PostgresWorkersPerCore*runtime.GOMAXPROCS(0), config.MaxHTTPWorkers)
	if a, ok := NewPublicServer(cfg, h, log).(*arrival.Server); ok && a.Workers != want {
		t.Errorf("http_workers 0 on PostgreSQL: Workers %d, want %d", a.Workers, want)
	}
	cfg.HTTPWorkers = 5
	if a, ok := NewPublicServer(cfg, h, log).(*arrival.Server); ok && a.Workers != 5 {
		t.Errorf("http_workers 5 on PostgreSQL: Workers %d", a.Workers)
	}
}
