package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latchkey-dev/latchkey/internal/keys"
)

func TestCLIKeys(t *testing.T) {
	db := filepath.Join(t.TempDir(), "keys.db")
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	vars := map[string]string{"LATCHKEY_DATABASE": db}
	keysCLI := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"keys"}, args...), strings.NewReader(""), &out, &errb,
			func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
		return out.String(), err
	}
	list := func() []keys.KeyInfo {
		t.Helper()
		out, err := keysCLI("list")
		if err != nil {
			t.Fatal(err)
		}
		var l []keys.KeyInfo
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("keys list: %v\n%s", err, out)
		}
		return l
	}
	if l := list(); len(l) != 0 {
		t.Fatalf("keys on a new database: %+v", l)
	}
	var ue usageError
	if _, err := keysCLI(); !errors.As(err, &ue) {
		t.Errorf("keys without a subcommand: %v", err)
	}
	if _, err := keysCLI("shuffle"); !errors.As(err, &ue) {
		t.Errorf("keys shuffle: %v", err)
	}
	if _, err := keysCLI("rotate"); err == nil || !strings.Contains(err.Error(), "no master key") {
		t.Fatalf("rotate without a master key: %v", err)
	}
	vars["LATCHKEY_MASTER_KEY"] = base64.StdEncoding.EncodeToString(master)
	// No keys at all (no server has started): a next key is published, not
	// promoted.
	if _, err := keysCLI("rotate", "--force"); !errors.Is(err, keys.ErrNotReady) {
		t.Fatalf("first rotate: %v", err)
	}
	if l := list(); len(l) != 1 || l[0].State != "next" || !l[0].Published {
		t.Fatalf("after the first rotate: %+v", l)
	}
	if _, err := keysCLI("rotate"); !errors.Is(err, keys.ErrNotReady) {
		t.Fatalf("rotate to a key published moments ago without --force: %v", err)
	}
	out, err := keysCLI("rotate", "--force")
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil || res["activated"] == "" || res["signing_by"] == nil {
		t.Fatalf("rotate printed %s (%v)", out, err)
	}
	if l := list(); len(l) != 2 || l[0].State != "active" || l[1].State != "next" {
		t.Fatalf("after rotating: %+v", l)
	}
	// Another master key cannot add keys the servers could not open.
	other := make([]byte, 32)
	_, _ = rand.Read(other)
	vars["LATCHKEY_MASTER_KEY"] = base64.StdEncoding.EncodeToString(other)
	if _, err := keysCLI("rotate", "--force"); err == nil || !strings.Contains(err.Error(), "wrong master key") {
		t.Fatalf("rotate with another master key: %v", err)
	}
	if l := list(); len(l) != 2 {
		t.Fatalf("a refused rotation changed the keys: %+v", l)
	}
}
