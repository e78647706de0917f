package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/latchkey-dev/latchkey/internal/admin"
	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/store/sqlstore"
)

// commonFlags are accepted by every subcommand.
type commonFlags struct {
	config   string
	database string
	adminURL string // remoteFlag
}

func newFlagSet(name string, stderr io.Writer, c *commonFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.config, "config", "", "YAML configuration file")
	fs.StringVar(&c.database, "database", "", "SQLite file path or postgres:// URL (overrides LATCHKEY_DATABASE)")
	return fs
}

// remoteFlag adds --admin-url to an operator command: with it (or
// LATCHKEY_ADMIN_URL) the command calls the admin API instead of opening
// the database, sending LATCHKEY_ADMIN_TOKEN (or the file
// LATCHKEY_ADMIN_TOKEN_FILE, or admin_token in --config).
func remoteFlag(fs *flag.FlagSet, c *commonFlags) {
	fs.StringVar(&c.adminURL, "admin-url", "", "call the admin API at this URL instead of opening the database (env LATCHKEY_ADMIN_URL)")
}

// remote returns the admin API client when remote mode is on, else nil.
func (c commonFlags) remote(cfg config.Config, lookup env) (*admin.Client, error) {
	u := c.adminURL
	if u == "" {
		u, _ = lookup("LATCHKEY_ADMIN_URL")
	}
	if u == "" {
		return nil, nil
	}
	if c.database != "" {
		return nil, usagef("--admin-url and --database conflict: give one")
	}
	tok, err := cfg.AdminTokenValue()
	if err != nil {
		return nil, err
	}
	return admin.NewClient(u, tok)
}

// printed prints v as JSON unless err is set, so a remote call's result
// prints like the local one: return printed(stdout)(rc.ListClients(ctx)).
func printed(w io.Writer) func(v any, err error) error {
	return func(v any, err error) error {
		if err != nil {
			return err
		}
		return printJSON(w, v)
	}
}

// parse parses flags, rejecting stray positional arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// loadConfig builds the configuration: defaults, file, environment, flags.
func loadConfig(c commonFlags, lookup env) (config.Config, error) {
	cfg := config.Default()
	path := c.config
	if path == "" {
		path, _ = lookup("LATCHKEY_CONFIG")
	}
	if err := cfg.Load(path, lookup); err != nil {
		return cfg, err
	}
	if c.database != "" {
		cfg.Database = c.database
	}
	return cfg, nil
}

// openStore opens and migrates the configured database.
func openStore(ctx context.Context, cfg config.Config) (*sqlstore.Store, error) {
	st, err := sqlstore.Open(ctx, cfg.Database)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("migrate database: %w", err)
	}
	st.SetClientCacheTTL(cfg.ClientCacheTTL.D())
	st.SetCheckpointInterval(cfg.SQLiteCheckpointInterval.D())
	return st, nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
