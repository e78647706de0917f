package main

import (
	"context"
	"fmt"
	"io"
)

func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	var c commonFlags
	fs := newFlagSet("migrate", stderr, &c)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(c, lookup)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintln(stdout, "database is up to date")
	return nil
}
