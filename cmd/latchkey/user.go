package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/mfa"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/store"
)

func cmdUser(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, lookup env) error {
	if len(args) == 0 {
		return usagef("user: missing subcommand (create, list, disable, enable, set-password, revoke-sessions, reset-mfa)")
	}
	var c commonFlags
	fs := newFlagSet("user "+args[0], stderr, &c)
	remoteFlag(fs, &c)
	var run func(context.Context, config.Config) error
	switch args[0] {
	case "create":
		username := fs.String("username", "", "username (what the user types to sign in)")
		pwStdin := fs.Bool("password-stdin", false, "read the password from standard input")
		name := fs.String("name", "", "full name")
		email := fs.String("email", "", "email address")
		totpSecret := fs.String("totp-secret", "", "enroll a TOTP second factor with this base32 secret")
		run = func(ctx context.Context, cfg config.Config) error {
			if *username == "" {
				return usagef("user create: --username is required")
			}
			if !*pwStdin {
				return usagef("user create: --password-stdin is required (passwords are never taken as arguments)")
			}
			pw, err := readPassword(stdin)
			if err != nil {
				return err
			}
			if rc, err := c.remote(cfg, lookup); err != nil || rc != nil {
				if err != nil {
					return err
				}
				if *totpSecret != "" {
					return usagef("user create: --totp-secret is not available with --admin-url (the user enrolls on the account page)")
				}
				return printed(stdout)(rc.CreateUser(ctx, operator.UserSpec{Username: *username, Password: pw, Name: *name, Email: *email}))
			}
			st, err := openStore(ctx, cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			spec := operator.UserSpec{Username: *username, Password: pw, Name: *name, Email: *email}
			if *totpSecret != "" {
				if err := mfa.ValidSecret(*totpSecret); err != nil {
					return err
				}
				master, _, err := masterKey(cfg)
				if err != nil {
					return fmt.Errorf("--totp-secret needs the master key: %w", err)
				}
				codec, err := mfa.NewCodec(master)
				if err != nil {
					return err
				}
				secretB32 := mfa.Normalize(*totpSecret)
				spec.Factor = func(userID string) []byte { return codec.Seal(userID, &mfa.Factor{Secret: secretB32}) }
			}
			v, err := operator.CreateUser(ctx, st, spec, now())
			if err != nil {
				return err
			}
			return printJSON(stdout, v)
		}
	case "list":
		run = func(ctx context.Context, cfg config.Config) error {
			if rc, err := c.remote(cfg, lookup); err != nil || rc != nil {
				if err != nil {
					return err
				}
				return printed(stdout)(rc.ListUsers(ctx))
			}
			st, err := openStore(ctx, cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			us, err := st.ListUsers(ctx)
			if err != nil {
				return err
			}
			views := make([]operator.UserView, 0, len(us))
			for _, u := range us {
				views = append(views, operator.ViewUser(u))
			}
			return printJSON(stdout, views)
		}
	case "disable", "enable":
		username := fs.String("username", "", "the user")
		run = func(ctx context.Context, cfg config.Config) error {
			if *username == "" {
				return usagef("user %s: --username is required", args[0])
			}
			if rc, err := c.remote(cfg, lookup); err != nil || rc != nil {
				if err == nil {
					err = rc.SetDisabled(ctx, *username, args[0] == "disable")
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%sd user %s\n", args[0], *username)
				return nil
			}
			return withStore(ctx, cfg, func(st store.Store, fam *family.Service) error {
				if err := operator.SetDisabled(ctx, st, fam, *username, args[0] == "disable", now()); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%sd user %s\n", args[0], *username)
				return nil
			})
		}
	case "reset-mfa":
		username := fs.String("username", "", "the user")
		run = func(ctx context.Context, cfg config.Config) error {
			if *username == "" {
				return usagef("user reset-mfa: --username is required")
			}
			return withStore(ctx, cfg, func(st store.Store, fam *family.Service) error {
				n, err := operator.ResetMFA(ctx, st, fam, *username, cfg.RevokeOnMFARemove, now())
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "removed %s's second factor; %d refresh token families ended\n", *username, n)
				return nil
			})
		}
	case "revoke-sessions":
		username := fs.String("username", "", "the user")
		run = func(ctx context.Context, cfg config.Config) error {
			if *username == "" {
				return usagef("user revoke-sessions: --username is required")
			}
			if rc, err := c.remote(cfg, lookup); err != nil || rc != nil {
				if err != nil {
					return err
				}
				n, err := rc.RevokeSessions(ctx, *username)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "ended %d refresh token families of %s\n", n, *username)
				return nil
			}
			return withStore(ctx, cfg, func(st store.Store, fam *family.Service) error {
				n, err := operator.RevokeSessions(ctx, st, fam, *username, now())
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "ended %d refresh token families of %s\n", n, *username)
				return nil
			})
		}
	case "set-password":
		username := fs.String("username", "", "the user")
		pwStdin := fs.Bool("password-stdin", false, "read the new password from standard input")
		keep := fs.Bool("keep-sessions", false, "do not end the user's refresh tokens")
		run = func(ctx context.Context, cfg config.Config) error {
			if *username == "" || !*pwStdin {
				return usagef("user set-password: --username and --password-stdin are required")
			}
			pw, err := readPassword(stdin)
			if err != nil {
				return err
			}
			if rc, err := c.remote(cfg, lookup); err != nil || rc != nil {
				if err != nil {
					return err
				}
				// The server applies its own revoke_on_password_change.
				n, err := rc.SetPassword(ctx, *username, pw, *keep)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "password changed; %d refresh token families ended\n", n)
				return nil
			}
			return withStore(ctx, cfg, func(st store.Store, fam *family.Service) error {
				n, err := operator.SetPassword(ctx, st, fam, *username, pw, cfg.RevokeOnPasswordChange && !*keep, now())
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "password changed; %d refresh token families ended\n", n)
				return nil
			})
		}
	default:
		return usagef("user: unknown subcommand %q (create, list, disable, enable, set-password, revoke-sessions, reset-mfa)", args[0])
	}
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(c, lookup)
	if err != nil {
		return err
	}
	return run(ctx, cfg)
}

// readPassword reads the first line of r (without its line ending).
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
