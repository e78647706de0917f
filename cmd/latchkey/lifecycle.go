package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/store"
)

// withStore opens the configured store and a family service, and runs fn.
func withStore(ctx context.Context, cfg config.Config, fn func(st store.Store, fam *family.Service) error) error {
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st, &family.Service{Store: st, Log: slog.New(slog.DiscardHandler), Now: time.Now})
}

// cmdGrant: latchkey grant list --username U | grant revoke --username U --client C
func cmdGrant(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	if len(args) == 0 {
		return usagef("grant: missing subcommand (list, revoke)")
	}
	var c commonFlags
	fs := newFlagSet("grant "+args[0], stderr, &c)
	remoteFlag(fs, &c)
	username := fs.String("username", "", "the user")
	client := fs.String("client", "", "client id")
	switch args[0] {
	case "list", "revoke":
	default:
		return usagef("grant: unknown subcommand %q (list, revoke)", args[0])
	}
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *username == "" {
		return usagef("grant %s: --username is required", args[0])
	}
	if args[0] == "revoke" && *client == "" {
		return usagef("grant revoke: --client is required")
	}
	cfg, err := loadConfig(c, lookup)
	if err != nil {
		return err
	}
	rc, err := c.remote(cfg, lookup)
	if err != nil {
		return err
	}
	revoked := func(err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s's grant for %s\n", *username, *client)
		return nil
	}
	if rc != nil {
		if args[0] == "list" {
			return printed(stdout)(rc.Grants(ctx, *username))
		}
		return revoked(rc.RevokeGrant(ctx, *username, *client))
	}
	return withStore(ctx, cfg, func(st store.Store, fam *family.Service) error {
		if args[0] == "list" {
			return printed(stdout)(operator.UserGrants(ctx, st, *username, time.Now()))
		}
		return revoked(operator.RevokeUserGrant(ctx, st, fam, *username, *client, "revoked by an operator (latchkey grant revoke)"))
	})
}

// cmdToken: latchkey token revoke --username U [--client C]
func cmdToken(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	if len(args) == 0 || args[0] != "revoke" {
		return usagef("token: usage: latchkey token revoke --username U [--client C]")
	}
	var c commonFlags
	fs := newFlagSet("token revoke", stderr, &c)
	remoteFlag(fs, &c)
	username := fs.String("username", "", "the user whose refresh tokens end")
	client := fs.String("client", "", "only this client's tokens")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *username == "" {
		return usagef("token revoke: --username is required")
	}
	cfg, err := loadConfig(c, lookup)
	if err != nil {
		return err
	}
	done := func(n int, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %d refresh token families\n", n)
		return nil
	}
	if rc, err := c.remote(cfg, lookup); err != nil || rc != nil {
		if err != nil {
			return err
		}
		return done(rc.RevokeTokens(ctx, *username, *client))
	}
	return withStore(ctx, cfg, func(st store.Store, fam *family.Service) error {
		return done(operator.RevokeTokens(ctx, st, fam, *username, *client))
	})
}

// cmdAudit: latchkey audit list [--username U] [--client C] [--limit N]
func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	if len(args) == 0 || args[0] != "list" {
		return usagef("audit: usage: latchkey audit list [--username U] [--client C] [--limit N]")
	}
	var c commonFlags
	fs := newFlagSet("audit list", stderr, &c)
	remoteFlag(fs, &c)
	username := fs.String("username", "", "only events of this user")
	client := fs.String("client", "", "only events of this client")
	limit := fs.Int("limit", 100, "at most this many events, newest first")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *limit < 1 || *limit > 10000 {
		return usagef("audit list: --limit must be between 1 and 10000")
	}
	cfg, err := loadConfig(c, lookup)
	if err != nil {
		return err
	}
	q := operator.AuditQuery{Username: *username, ClientID: *client, Limit: *limit}
	if rc, err := c.remote(cfg, lookup); err != nil || rc != nil {
		if err != nil {
			return err
		}
		return printed(stdout)(rc.Audit(ctx, q))
	}
	return withStore(ctx, cfg, func(st store.Store, _ *family.Service) error {
		return printed(stdout)(operator.Audit(ctx, st, q))
	})
}
