package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/demo"
	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/server"
)

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	var c commonFlags
	fs := newFlagSet("serve", stderr, &c)
	dev := fs.Bool("dev", false, "development mode: demo user and clients, generated master key")
	addr := fs.String("addr", "", "listen address (overrides LATCHKEY_ADDR)")
	issuer := fs.String("issuer", "", "issuer URL (overrides LATCHKEY_ISSUER)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(c, lookup)
	if err != nil {
		return err
	}
	if *dev {
		cfg.Dev = true
	}
	if *addr != "" {
		cfg.Addr = *addr
	}
	if *issuer != "" {
		cfg.Issuer = *issuer
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	logOut := newLogWriter(stderr) // buffered, written by one goroutine (logwriter.go)
	defer logOut.Close()
	log := newLogger(cfg, logOut)
	stopPprof, err := startPprof(lookup, log) // opt-in, loopback only (pprof.go)
	if err != nil {
		return err
	}
	defer stopPprof()
	if !cfg.Dev && cfg.MasterKey == "" && cfg.MasterKeyFile == "" {
		// A production server never falls back to dev mode's generated
		// key file, even if one lies next to the database.
		return errors.New("no master key: set LATCHKEY_MASTER_KEY (generate one with `openssl rand -base64 32`) or LATCHKEY_MASTER_KEY_FILE; or run with --dev")
	}
	master, generated, err := masterKey(cfg)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if cfg.ClientCacheTTL.D() > 0 {
		// Other instances' and the CLI's client writes reach the cache at
		// once (PostgreSQL; SQLite: the TTL bounds them).
		st.WatchClients(ctx, log)
	}
	ops, err := newOperations(ctx, cfg, st, log) // operations.go: metrics, admin API, audit webhook
	if err != nil {
		return err
	}
	srv, err := server.New(ctx, cfg, server.Options{Store: st, MasterKey: master, Log: log, Metrics: ops.metrics, OnAudit: ops.onAudit()})
	if err != nil {
		return err
	}
	handler := srv.Handler()
	var seeded *demo.Seeded
	if cfg.Dev {
		if seeded, err = demo.Seed(ctx, st, cfg.Issuer); err != nil {
			return fmt.Errorf("dev data: %w", err)
		}
		handler = demo.Mount(handler, cfg.Issuer, log)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	public := server.NewPublicServer(cfg, handler, log)
	servers := []listening{{"public", public, ln}}
	if cfg.AdminAddr != "" {
		aln, err := net.Listen("tcp", cfg.AdminAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("admin listener: %w", err)
		}
		servers = append(servers, listening{"admin", server.NewHTTPServer(ops.adminHandler(cfg, srv, st, log), log), aln})
		log.Info("admin listening", slog.String("addr", aln.Addr().String()))
		if cfg.AdminPprof {
			log.Warn("runtime profiles served on the admin listener (admin_pprof)", slog.String("path", "/debug/pprof/"))
		}
	}
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	defer stopSweep()
	go srv.Sweep(sweepCtx)
	if ops.hook != nil {
		var hooks sync.WaitGroup
		hooks.Go(func() { ops.hook.Run(sweepCtx) })
		defer func() { stopSweep(); hooks.Wait() }() // the worker stops between deliveries
	}

	log.Info("listening", slog.String("addr", ln.Addr().String()), slog.String("issuer", cfg.Issuer), slog.Bool("dev", cfg.Dev),
		slog.String("http_order", server.HTTPOrder(public)))
	if cfg.Dev {
		printDevBanner(stdout, cfg, ln.Addr().String(), generated, seeded)
	}
	// Graceful shutdown of every listener: in-flight requests finish.
	return serveAll(ctx, log, shutdownGrace, servers...)
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// masterKey returns the configured master key. In dev mode without one it
// generates a key into a file beside the database, so restarts keep working,
// and reports that it did.
func masterKey(cfg config.Config) (keys.MasterKey, string, error) {
	switch {
	case cfg.MasterKey != "":
		k, err := config.DecodeMasterKey(cfg.MasterKey)
		return k, "", err
	case cfg.MasterKeyFile != "":
		b, err := os.ReadFile(cfg.MasterKeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("master key file: %w", err)
		}
		k, err := config.DecodeMasterKey(string(b))
		return k, "", err
	}
	// A dev server's generated key: used by the CLI too, so commands that
	// need the key work next to a dev server on the same database.
	path := devKeyPath(cfg)
	if b, err := os.ReadFile(path); err == nil {
		k, err := config.DecodeMasterKey(string(b))
		return k, path, err
	}
	if !cfg.Dev {
		return nil, "", errors.New("no master key: set LATCHKEY_MASTER_KEY (generate one with `openssl rand -base64 32`) or LATCHKEY_MASTER_KEY_FILE; or run with --dev")
	}
	k := make([]byte, 32)
	randRead(k)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(path, []byte(encodeKey(k)+"\n"), 0o600); err != nil {
		return nil, "", fmt.Errorf("write dev master key: %w", err)
	}
	return k, path, nil
}

// devKeyPath is where dev mode keeps its generated master key.
func devKeyPath(cfg config.Config) string {
	if strings.Contains(cfg.Database, "://") {
		return "latchkey-dev.master-key"
	}
	return cfg.Database + ".master-key"
}

func printDevBanner(w io.Writer, cfg config.Config, addr, keyFile string, s *demo.Seeded) {
	fmt.Fprintf(w, `
  Latchkey is running in DEVELOPMENT MODE — do not use this for real users.

  !! Master key: generated and stored UNENCRYPTED in %s
  !! Set LATCHKEY_MASTER_KEY in production.

  Issuer:        %s   (listening on %s)
  Database:      %s
  Demo user:     %s / %s
  Demo clients:  %s (confidential, secret %s)
                 %s (public, PKCE)

  Try the whole flow in your browser:  %s/demo
  Your account page:                   %s/account
  Discovery:                           %s/.well-known/openid-configuration

`, keyFile, cfg.Issuer, addr, cfg.Database, s.Username, s.Password, s.WebClientID, s.WebClientSecret, s.SPAClientID,
		strings.TrimRight(cfg.Issuer, "/"), strings.TrimRight(cfg.Issuer, "/"), strings.TrimRight(cfg.Issuer, "/"))
}
