package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/server"
)

// cmdKeys: latchkey keys list | keys rotate [--force]
//
// Keys move next → active → retired. Running servers pick a rotation up at
// their next key reload (keys.ReloadInterval), without a restart.
func cmdKeys(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	if len(args) == 0 {
		return usagef("keys: missing subcommand (list, rotate, rotate-master)")
	}
	var c commonFlags
	fs := newFlagSet("keys "+args[0], stderr, &c)
	var force *bool
	switch args[0] {
	case "list":
	case "rotate":
		force = fs.Bool("force", false, fmt.Sprintf("promote the next key even if it was published less than %s ago", keys.MinNextAge))
	default:
		return usagef("keys: unknown subcommand %q (list, rotate, rotate-master)", args[0])
	}
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(c, lookup)
	if err != nil {
		return err
	}
	retention := keys.Retention(max(cfg.AccessTokenTTL.D(), cfg.IDTokenTTL.D()), keys.ReloadInterval)
	if args[0] == "list" {
		st, err := openStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		recs, err := st.ListSigningKeys(ctx)
		if err != nil {
			return err
		}
		return printJSON(stdout, keys.Describe(recs, time.Now(), retention))
	}

	// rotate: new keys are sealed with the master key, so it must be the
	// servers' key (Rotate checks every stored key opens — with it or, during
	// a master key rotation, with LATCHKEY_OLD_MASTER_KEYS — first).
	master, _, err := masterKey(cfg)
	if err != nil {
		return err
	}
	oldRaw, err := config.DecodeMasterKeys(cfg.OldMasterKeys)
	if err != nil {
		return fmt.Errorf("old master keys: %w", err)
	}
	old := make([]keys.MasterKey, len(oldRaw))
	for i, k := range oldRaw {
		old[i] = k
	}
	sealer, err := keys.NewSealer(master, keys.SealPurpose, old...)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	// The same algorithms as the servers' (signing_alg, RS256,
	// id_token_algs): run it with their configuration.
	m := &keys.Manager{Store: st, Sealer: sealer, Alg: jose.SignatureAlgorithm(cfg.SigningAlg), Algs: server.KeyAlgorithms(cfg), Now: time.Now}
	minAge := keys.MinNextAge
	if *force {
		minAge = 0
	}
	res, err := m.Rotate(ctx, minAge)
	if err != nil {
		return err
	}
	// Servers sign with the activated key once they have reloaded; the
	// retired keys stay in the JWKS until every token they signed expired.
	now := time.Now().UTC().Truncate(time.Second)
	out := struct {
		*keys.RotateResult
		SigningBy        time.Time `json:"signing_by"`
		RetiredPublished time.Time `json:"retired_published_until,omitzero"`
	}{RotateResult: res, SigningBy: now.Add(keys.ReloadInterval)}
	if len(res.Retired) > 0 {
		out.RetiredPublished = now.Add(retention)
	}
	return printJSON(stdout, out)
}
