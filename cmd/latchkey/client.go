package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/operator"
)

// durationFlag is a duration flag that records whether it was set.
type durationFlag struct {
	d   time.Duration
	set bool
}

func (f *durationFlag) String() string { return f.d.String() }
func (f *durationFlag) Set(s string) error {
	d, err := config.ParseDuration(s)
	if err != nil {
		return err
	}
	if d <= 0 {
		return fmt.Errorf("duration must be positive")
	}
	f.d, f.set = d, true
	return nil
}

// optBool is a boolean flag that records whether it was set.
type optBool struct {
	v, set bool
}

func (f *optBool) String() string   { return strconv.FormatBool(f.v) }
func (f *optBool) IsBoolFlag() bool { return true }
func (f *optBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	f.v, f.set = v, true
	return nil
}

func cmdClient(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	if len(args) == 0 {
		return usagef("client: missing subcommand (create, update, list, delete)")
	}
	var c commonFlags
	fs := newFlagSet("client "+args[0], stderr, &c)
	remoteFlag(fs, &c)
	id := fs.String("id", "", "client id")
	var run func(context.Context, config.Config) error
	switch args[0] {
	case "create":
		var redirects stringList
		fs.Var(&redirects, "redirect-uri", "redirect URI (repeatable; exact match)")
		sec := fs.String("secret", "", "client secret (generated when omitted for a confidential client)")
		public := fs.Bool("public", false, "public client (no secret; PKCE required)")
		name := fs.String("name", "", "display name shown on the consent page")
		scope := fs.String("scope", "", `allowed scopes (default "openid profile email offline_access")`)
		var idle, absolute durationFlag
		fs.Var(&idle, "refresh-idle", "refresh token idle lifetime (e.g. 72h, 30d)")
		fs.Var(&absolute, "refresh-absolute", "refresh token absolute lifetime")
		reportOnly := fs.Bool("reuse-report-only", false, "report refresh-token reuse without revoking")
		requireDPoP := fs.Bool("require-dpop", false, "refuse token requests without a DPoP proof (RFC 9449)")
		jwks := fs.String("jwks", "", "public JSON Web Key Set: the client authenticates with private_key_jwt")
		jwksFile := fs.String("jwks-file", "", "read the private_key_jwt JSON Web Key Set from this file")
		idTokenAlg := fs.String("id-token-alg", "", "sign this client's ID tokens with RS256, ES256 or EdDSA (default: signing_alg)")
		run = func(ctx context.Context, cfg config.Config) error {
			if *id == "" {
				return usagef("client create: --id is required")
			}
			set, err := readJWKS(*jwks, *jwksFile)
			if err != nil {
				return err
			}
			spec := operator.ClientSpec{ID: *id, Name: *name, Secret: *sec, Public: *public, RedirectURIs: redirects,
				RefreshIdle: idle.d, RefreshAbsolute: absolute.d, ReuseReportOnly: *reportOnly,
				RequireDPoP: *requireDPoP, JWKS: set, IDTokenAlg: *idTokenAlg, KeyAlgs: cfg.KeyAlgorithms()}
			if *scope != "" {
				spec.Scopes = oauth.ParseScope(*scope)
			}
			if rc, err := c.remote(cfg, lookup); err != nil || rc != nil {
				if err != nil {
					return err
				}
				return printed(stdout)(rc.CreateClient(ctx, spec))
			}
			st, err := openStore(ctx, cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			v, err := operator.CreateClient(ctx, st, spec, now())
			if err != nil {
				return err
			}
			return printJSON(stdout, v)
		}
	case "update":
		var redirects stringList
		fs.Var(&redirects, "redirect-uri", "replace the redirect URIs (repeatable)")
		name := fs.String("name", "", "display name")
		scope := fs.String("scope", "", "replace the allowed scopes")
		var idle, absolute durationFlag
		fs.Var(&idle, "refresh-idle", "refresh token idle lifetime")
		fs.Var(&absolute, "refresh-absolute", "refresh token absolute lifetime")
		var reportOnly, requireMFA optBool
		fs.Var(&reportOnly, "reuse-report-only", "report refresh-token reuse without revoking (true|false)")
		fs.Var(&requireMFA, "require-mfa", "require multi-factor sign-in")
		noMFA := fs.Bool("no-require-mfa", false, "stop requiring multi-factor sign-in")
		var requireDPoP optBool
		fs.Var(&requireDPoP, "require-dpop", "refuse token requests without a DPoP proof (true|false)")
		noDPoP := fs.Bool("no-require-dpop", false, "stop requiring DPoP proofs")
		jwks := fs.String("jwks", "", "replace the private_key_jwt JSON Web Key Set")
		jwksFile := fs.String("jwks-file", "", "replace the private_key_jwt JSON Web Key Set from this file")
		idTokenAlg := fs.String("id-token-alg", "", `sign this client's ID tokens with RS256, ES256 or EdDSA ("": back to signing_alg)`)
		run = func(ctx context.Context, cfg config.Config) error {
			if *id == "" {
				return usagef("client update: --id is required")
			}
			if requireDPoP.set && *noDPoP {
				return usagef("client update: --require-dpop and --no-require-dpop conflict")
			}
			var u operator.ClientUpdate
			fs.Visit(func(f *flag.Flag) {
				switch f.Name {
				case "name":
					u.Name = name
				case "scope":
					u.Scopes = oauth.ParseScope(*scope)
				case "id-token-alg":
					u.IDTokenAlg, u.KeyAlgs = idTokenAlg, cfg.KeyAlgorithms()
				}
			})
			if len(redirects) > 0 {
				u.RedirectURIs = redirects
			}
			if idle.set {
				u.RefreshIdle = &idle.d
			}
			if absolute.set {
				u.RefreshAbsolute = &absolute.d
			}
			if reportOnly.set {
				u.ReuseReportOnly = &reportOnly.v
			}
			if requireMFA.set && *noMFA {
				return usagef("client update: --require-mfa and --no-require-mfa conflict")
			}
			if requireMFA.set {
				u.RequireMFA = &requireMFA.v
			}
			if *noMFA {
				f := false
				u.RequireMFA = &f
			}
			if requireDPoP.set {
				u.RequireDPoP = &requireDPoP.v
			}
			if *noDPoP {
				f := false
				u.RequireDPoP = &f
			}
			set, err := readJWKS(*jwks, *jwksFile)
			if err != nil {
				return err
			}
			if set != "" {
				u.JWKS = &set
			}
			if rc, err := c.remote(cfg, lookup); err != nil || rc != nil {
				if err != nil {
					return err
				}
				return printed(stdout)(rc.UpdateClient(ctx, *id, u))
			}
			st, err := openStore(ctx, cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			v, err := operator.UpdateClient(ctx, st, *id, u, now())
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
				return printed(stdout)(rc.ListClients(ctx))
			}
			st, err := openStore(ctx, cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			return printed(stdout)(operator.ListClients(ctx, st))
		}
	case "delete":
		run = func(ctx context.Context, cfg config.Config) error {
			if *id == "" {
				return usagef("client delete: --id is required")
			}
			if rc, err := c.remote(cfg, lookup); err != nil || rc != nil {
				if err == nil {
					err = rc.DeleteClient(ctx, *id)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "deleted client %s\n", *id)
				return nil
			}
			st, err := openStore(ctx, cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			fam := &family.Service{Store: st, Log: slog.New(slog.DiscardHandler), Now: time.Now}
			if err := operator.DeleteClient(ctx, st, fam, *id); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "deleted client %s\n", *id)
			return nil
		}
	default:
		return usagef("client: unknown subcommand %q (create, update, list, delete)", args[0])
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

func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// readJWKS returns the key set given inline (--jwks) or in a file
// (--jwks-file), or "" for neither.
func readJWKS(inline, file string) (string, error) {
	switch {
	case inline != "" && file != "":
		return "", usagef("--jwks and --jwks-file conflict: give one")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--jwks-file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return strings.TrimSpace(inline), nil
}
