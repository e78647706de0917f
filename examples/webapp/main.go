// Command webapp is an example web application that signs its users in with
// Latchkey and keeps their refresh tokens on its backend. The logic is in
// package app; this file reads the configuration and serves it. See
// README.md for how to run it against `latchkey serve --dev`.
//
// Configuration (flags override the environment):
//
//	-issuer         WEBAPP_ISSUER         Latchkey's issuer URL (default http://localhost:8080)
//	-client-id      WEBAPP_CLIENT_ID      the app's client id (default example-webapp)
//	                WEBAPP_CLIENT_SECRET  the app's client secret (environment only)
//	-redirect-url   WEBAPP_REDIRECT_URL   the registered redirect URI (default http://localhost:3000/callback)
//	-addr           WEBAPP_ADDR           listen address (default localhost:3000)
//	                WEBAPP_SESSION_KEY    32 bytes, base64: seals tokens at rest (environment only;
//	                                      generated at start-up when unset)
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/latchkey-dev/latchkey/examples/webapp/app"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "webapp:", err)
		}
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func run(log *slog.Logger) error {
	fs := flag.NewFlagSet("webapp", flag.ContinueOnError)
	issuer := fs.String("issuer", env("WEBAPP_ISSUER", "http://localhost:8080"), "Latchkey's issuer URL")
	clientID := fs.String("client-id", env("WEBAPP_CLIENT_ID", "example-webapp"), "client id registered at Latchkey")
	redirect := fs.String("redirect-url", env("WEBAPP_REDIRECT_URL", "http://localhost:3000/callback"), "redirect URI registered at Latchkey")
	addr := fs.String("addr", env("WEBAPP_ADDR", "localhost:3000"), "listen address")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	secret := os.Getenv("WEBAPP_CLIENT_SECRET")
	if secret == "" {
		return errors.New("set WEBAPP_CLIENT_SECRET to the client secret you registered with `latchkey client create`")
	}
	key, err := sessionKey(log)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	a, err := app.New(start, app.Config{
		Issuer: *issuer, ClientID: *clientID, ClientSecret: secret, RedirectURL: *redirect,
		SessionKey: key, Log: log,
	})
	if err != nil {
		return fmt.Errorf("%w (is Latchkey running at %s?)", err, *issuer)
	}
	srv := &http.Server{Addr: *addr, Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("example web app listening", slog.String("addr", *addr), slog.String("open", "http://"+*addr+"/"), slog.String("issuer", *issuer))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	return srv.Shutdown(shutdown)
}

// sessionKey reads WEBAPP_SESSION_KEY, or makes up a key for this run: the
// example keeps its sessions in memory, so they die with the process anyway.
// An app with a persistent session store must configure a stable key.
func sessionKey(log *slog.Logger) ([]byte, error) {
	s := os.Getenv("WEBAPP_SESSION_KEY")
	if s == "" {
		log.Warn("WEBAPP_SESSION_KEY is not set: using a random key for this run (fine with in-memory sessions)")
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		return k, nil
	}
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(k) != 32 {
		return nil, errors.New("WEBAPP_SESSION_KEY must be 32 bytes in base64 (openssl rand -base64 32)")
	}
	return k, nil
}
