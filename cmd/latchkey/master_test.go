package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/mfa"
	"github.com/latchkey-dev/latchkey/internal/store/sqlstore"
)

func testMasterKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// TestKeysRotateMaster: `latchkey keys rotate-master` re-seals every signing
// key and second factor under the new key, is idempotent, refuses to run
// without a usable old key, and tells the operator what to change.
func TestKeysRotateMaster(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "rotate.db")
	oldKey, newKey := testMasterKey(1), testMasterKey(2)
	env := map[string]string{"LATCHKEY_DATABASE": db, "LATCHKEY_MASTER_KEY": base64.StdEncoding.EncodeToString(oldKey)}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cli := func(stdin string, args ...string) (string, error) {
		var out, errb bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := run(ctx, args, strings.NewReader(stdin), &out, &errb, lookup)
		return out.String() + errb.String(), err
	}
	if out, err := cli("", "migrate"); err != nil {
		t.Fatal(err, out)
	}
	// Signing keys (active and next) and a user with TOTP, under the old key.
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	oldSealer, _ := keys.NewSealer(oldKey, keys.SealPurpose)
	if err := (&keys.Manager{Store: st, Sealer: oldSealer, Alg: jose.ES256, Now: time.Now}).Init(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := cli("a long enough password\n", "user", "create", "--username", "carol", "--password-stdin", "--totp-secret", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"); err != nil {
		t.Fatal(err, out)
	}
	if out, err := cli("a long enough password\n", "user", "create", "--username", "dave", "--password-stdin"); err != nil {
		t.Fatal(err, out)
	}

	// Usage errors.
	if _, err := cli("", "keys", "rotate-master"); err == nil {
		t.Fatal("rotate-master without a new key succeeded")
	}
	keyFile := filepath.Join(dir, "new.key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(newKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env["LATCHKEY_NEW_MASTER_KEY"] = base64.StdEncoding.EncodeToString(newKey)
	if _, err := cli("", "keys", "rotate-master", "--new-key-file", keyFile); err == nil {
		t.Fatal("two new keys accepted")
	}
	delete(env, "LATCHKEY_NEW_MASTER_KEY")

	out, err := cli("", "keys", "rotate-master", "--new-key-file", keyFile)
	if err != nil {
		t.Fatal(err, out)
	}
	if !strings.Contains(out, "Re-sealed 2 of 2 signing keys and 1 of 1 second factors") || !strings.Contains(out, "LATCHKEY_OLD_MASTER_KEYS") {
		t.Fatalf("output: %s", out)
	}
	if strings.Contains(out, env["LATCHKEY_MASTER_KEY"]) || strings.Contains(out, base64.StdEncoding.EncodeToString(newKey)) {
		t.Fatal("the output contains a master key")
	}
	// Everything opens with the new key alone.
	newSealer, _ := keys.NewSealer(newKey, keys.SealPurpose)
	recs, _ := st.ListSigningKeys(ctx)
	for _, r := range recs {
		if _, err := newSealer.Open(r.PrivateKey, []byte(r.ID)); err != nil {
			t.Fatalf("signing key %s after rotation: %v", r.ID, err)
		}
	}
	codec, _ := mfa.NewCodec(newKey)
	u, err := st.GetUserByUsername(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if f, err := codec.Open(u.ID, u.TOTPSecret); err != nil || f.Secret != "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP" {
		t.Fatalf("second factor after rotation: %v %v", f, err)
	}

	// Running it again changes nothing (resumable, idempotent).
	out, err = cli("", "keys", "rotate-master", "--new-key-file", keyFile)
	if err != nil || !strings.Contains(out, "Re-sealed 0 of 2 signing keys and 0 of 1 second factors") {
		t.Fatalf("second run: %v %s", err, out)
	}
	// With the new configuration (new key current, old key kept) it is the
	// finishing pass.
	env["LATCHKEY_MASTER_KEY"] = base64.StdEncoding.EncodeToString(newKey)
	env["LATCHKEY_OLD_MASTER_KEYS"] = base64.StdEncoding.EncodeToString(oldKey)
	out, err = cli("", "keys", "rotate-master", "--new-key-file", keyFile)
	if err != nil || !strings.Contains(out, "everything sealed is now under it") {
		t.Fatalf("finishing pass: %v %s", err, out)
	}
	// A configuration that cannot read the rows stops before changing any.
	env["LATCHKEY_MASTER_KEY"] = base64.StdEncoding.EncodeToString(testMasterKey(3))
	delete(env, "LATCHKEY_OLD_MASTER_KEYS")
	env["LATCHKEY_NEW_MASTER_KEY"] = base64.StdEncoding.EncodeToString(testMasterKey(4))
	if out, err := cli("", "keys", "rotate-master"); err == nil || !strings.Contains(err.Error(), "cannot decrypt") {
		t.Fatalf("wrong old key: %v %s", err, out)
	}
	for _, r := range recs {
		after, _ := st.ListSigningKeys(ctx)
		for _, a := range after {
			if a.ID == r.ID {
				if _, err := newSealer.Open(a.PrivateKey, []byte(a.ID)); err != nil {
					t.Fatalf("a failed rotation changed key %s", a.ID)
				}
			}
		}
	}
}
