// Command latchkey is the Latchkey authorization server and its operator CLI.
//
//	latchkey serve [--dev]       run the server (migrates first)
//	latchkey migrate             bring the database schema up to date
//	latchkey client ...          create, list, update, delete clients
//	latchkey user ...            create and list users
//	latchkey keys ...            list and rotate the signing keys
//
// Every subcommand reads the same configuration (--config, LATCHKEY_*,
// flags) and works while a server runs on the same database.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		defer tuneGC(os.Getenv)() // gc.go
	}
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.LookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "latchkey:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError marks a command-line mistake (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

const usage = `Latchkey — an OpenID Connect provider whose speciality is refresh tokens.

Usage:
  latchkey serve [--dev] [--addr ADDR] [--issuer URL]
  latchkey migrate
  latchkey client create --id ID (--secret SECRET | --public) --redirect-uri URI [--redirect-uri URI ...]
                         [--name NAME] [--scope "openid offline_access ..."]
                         [--refresh-idle DURATION] [--refresh-absolute DURATION] [--reuse-report-only]
                         [--require-dpop] [--jwks JSON | --jwks-file FILE]   (a JWKS: private_key_jwt, no secret)
                         [--id-token-alg RS256|ES256|EdDSA]
  latchkey client update --id ID [--name NAME] [--redirect-uri URI ...] [--scope ...]
                         [--refresh-idle DURATION] [--refresh-absolute DURATION] [--reuse-report-only=true|false]
                         [--require-mfa | --no-require-mfa] [--require-dpop | --no-require-dpop]
                         [--jwks JSON | --jwks-file FILE] [--id-token-alg RS256|ES256|EdDSA|'']
  latchkey client list
  latchkey client delete --id ID
  latchkey user create --username NAME --password-stdin [--name NAME] [--email EMAIL] [--totp-secret BASE32]
  latchkey user list
  latchkey user disable|enable --username NAME
  latchkey user set-password --username NAME --password-stdin [--keep-sessions]
  latchkey user revoke-sessions --username NAME
  latchkey user reset-mfa --username NAME
  latchkey grant list --username NAME
  latchkey grant revoke --username NAME --client ID
  latchkey token revoke --username NAME [--client ID]
  latchkey audit list [--username NAME] [--client ID] [--limit N]
  latchkey keys list
  latchkey keys rotate [--force]
  latchkey keys rotate-master (--new-key-file FILE | env LATCHKEY_NEW_MASTER_KEY)

Every command accepts --config FILE and --database DSN (env LATCHKEY_DATABASE).
See docs/cli.md and docs/configuration.md.
`

// env looks up environment variables (os.LookupEnv outside tests).
type env func(string) (string, bool)

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, lookup env) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usagef("missing command")
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], stdout, stderr, lookup)
	case "migrate":
		return cmdMigrate(ctx, args[1:], stdout, stderr, lookup)
	case "client":
		return cmdClient(ctx, args[1:], stdout, stderr, lookup)
	case "user":
		return cmdUser(ctx, args[1:], stdin, stdout, stderr, lookup)
	case "grant":
		return cmdGrant(ctx, args[1:], stdout, stderr, lookup)
	case "token":
		return cmdToken(ctx, args[1:], stdout, stderr, lookup)
	case "audit":
		return cmdAudit(ctx, args[1:], stdout, stderr, lookup)
	case "keys":
		if len(args) > 1 && args[1] == "rotate-master" {
			return cmdRotateMaster(ctx, args[2:], stdout, stderr, lookup)
		}
		return cmdKeys(ctx, args[1:], stdout, stderr, lookup)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usagef("unknown command %q", args[0])
}
