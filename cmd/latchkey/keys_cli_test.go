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
	"time"

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
	// No keys at all (no server has started): a next key of each algorithm
	// of the default configuration (signing_alg ES256, RS256 for ID tokens)
	// is published, not promoted.
	if _, err := keysCLI("rotate", "--force"); !errors.Is(err, keys.ErrNotReady) {
		t.Fatalf("first rotate: %v", err)
	}
	byAlg := func(l []keys.KeyInfo) map[string]string { // alg → its keys' states, oldest first
		m := map[string]string{}
		for _, k := range l {
			m[k.Alg] += k.State + " "
			if !k.Published {
				t.Errorf("%s not published", k.ID)
			}
		}
		return m
	}
	if l := list(); len(l) != 2 || byAlg(l)["ES256"] != "next " || byAlg(l)["RS256"] != "next " {
		t.Fatalf("after the first rotate: %+v", l)
	}
	if _, err := keysCLI("rotate"); !errors.Is(err, keys.ErrNotReady) {
		t.Fatalf("rotate to a key published moments ago without --force: %v", err)
	}
	out, err := keysCLI("rotate", "--force")
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Activated  string             `json:"activated"`
		SigningBy  *time.Time         `json:"signing_by"`
		Algorithms []keys.AlgRotation `json:"algorithms"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Activated == "" || res.SigningBy == nil || len(res.Algorithms) != 2 ||
		res.Algorithms[0].Alg != "RS256" || res.Algorithms[0].Activated == "" || res.Algorithms[1].Activated != res.Activated {
		t.Fatalf("rotate printed %s (%v)", out, err)
	}
	if l := list(); len(l) != 4 || byAlg(l)["ES256"] != "active next " || byAlg(l)["RS256"] != "active next " {
		t.Fatalf("after rotating: %+v", l)
	}
	// signing_alg RS256 alone: the ES256 keys are retired, RS256 rotates.
	vars["LATCHKEY_SIGNING_ALG"] = "RS256"
	if _, err := keysCLI("rotate", "--force"); err != nil {
		t.Fatal(err)
	}
	if l := list(); len(l) != 5 || byAlg(l)["ES256"] != "retired retired " || byAlg(l)["RS256"] != "retired active next " {
		t.Fatalf("after rotating with signing_alg RS256: %+v", byAlg(l))
	}
	delete(vars, "LATCHKEY_SIGNING_ALG")
	// Another master key cannot add keys the servers could not open.
	other := make([]byte, 32)
	_, _ = rand.Read(other)
	vars["LATCHKEY_MASTER_KEY"] = base64.StdEncoding.EncodeToString(other)
	if _, err := keysCLI("rotate", "--force"); err == nil || !strings.Contains(err.Error(), "wrong master key") {
		t.Fatalf("rotate with another master key: %v", err)
	}
	if l := list(); len(l) != 5 {
		t.Fatalf("a refused rotation changed the keys: %+v", l)
	}
}
