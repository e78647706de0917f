package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/operator"
)

// cmdRotateMaster: latchkey keys rotate-master (--new-key-file F | env
// LATCHKEY_NEW_MASTER_KEY)
//
// It re-seals every value sealed under a master key — the signing keys'
// private parts and the users' second factors — under the new master key.
// Each row is re-sealed in its own transaction and only if it does not
// already open with the new key, so an interrupted run is finished by
// running it again, and running it while servers work is safe. The keys it
// reads with are the configured master key and LATCHKEY_OLD_MASTER_KEYS.
// See docs/SECURITY.md for the whole procedure.
func cmdRotateMaster(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	var c commonFlags
	fs := newFlagSet("keys rotate-master", stderr, &c)
	newKeyFile := fs.String("new-key-file", "", "file holding the new master key (base64, 32 bytes); or set LATCHKEY_NEW_MASTER_KEY")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(c, lookup)
	if err != nil {
		return err
	}
	var newRaw string
	envKey, envSet := lookup("LATCHKEY_NEW_MASTER_KEY")
	switch {
	case *newKeyFile != "" && envSet:
		return usagef("keys rotate-master: give the new key once: --new-key-file or LATCHKEY_NEW_MASTER_KEY")
	case *newKeyFile != "":
		b, err := os.ReadFile(*newKeyFile)
		if err != nil {
			return fmt.Errorf("--new-key-file: %w", err)
		}
		newRaw = string(b)
	case envSet:
		newRaw = envKey
	default:
		return usagef("keys rotate-master: the new master key is required (--new-key-file FILE or LATCHKEY_NEW_MASTER_KEY); generate one with `openssl rand -base64 32`")
	}
	newKey, err := config.DecodeMasterKey(newRaw)
	if err != nil {
		return fmt.Errorf("new master key: %w", err)
	}
	current, _, err := masterKey(cfg)
	if err != nil {
		return err
	}
	oldRaw, err := config.DecodeMasterKeys(cfg.OldMasterKeys)
	if err != nil {
		return fmt.Errorf("old master keys: %w", err)
	}
	readWith := []keys.MasterKey{current}
	for _, k := range oldRaw {
		readWith = append(readWith, k)
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := operator.RotateMaster(ctx, st, newKey, readWith)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Re-sealed %d of %d signing keys and %d of %d second factors under the new master key (the others already were).\n",
		res.KeysResealed, res.Keys, res.FactorsResealed, res.Factors)
	if slices.Equal(newKey, current) {
		fmt.Fprintln(stdout, "The new key is the configured master key: everything sealed is now under it.")
		return nil
	}
	fmt.Fprintf(stdout, `
Now change the configuration of every server instance and of this CLI:
  master key (LATCHKEY_MASTER_KEY / master_key_file)   the new key
  LATCHKEY_OLD_MASTER_KEYS (old_master_keys)          add the current master key (comma-separated)
and restart the instances. Keep the old key in LATCHKEY_OLD_MASTER_KEYS for
the refresh tokens' absolute lifetime (%s): refresh tokens MACed under it
verify until then. Then run this command once more with the new
configuration and the same new key, to re-seal anything an instance sealed
under the old key meanwhile. Secrets derived from the master key (CSRF
tokens of open forms, DPoP nonces) change at once; clients retry.
`, cfg.RefreshAbsolute.D())
	return nil
}
