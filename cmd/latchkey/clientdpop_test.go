package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey-dev/latchkey/internal/operator"
)

// TestClientDPoPAndJWKSFlags: `client create/update --require-dpop` and
// `--jwks` / `--jwks-file` (private_key_jwt).
func TestClientDPoPAndJWKSFlags(t *testing.T) {
	c := newCLI(t)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "k1"}}})
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, set, 0o600); err != nil {
		t.Fatal(err)
	}
	v := decodeJSON[operator.ClientView](t, c.ok("", "client", "create", "--id", "svc", "--jwks-file", file, "--require-dpop", "--redirect-uri", "https://svc.example/cb"))
	if v.AuthMethod != "private_key_jwt" || v.ClientSecret != "" || !v.RequireDPoP || len(v.JWKSKeys) != 1 || v.JWKSKeys[0] != "k1" {
		t.Fatalf("created %+v", v)
	}
	st := c.openStore()
	cl, err := st.GetClient(t.Context(), "svc")
	if err != nil || cl.SecretHash != "" || !strings.Contains(cl.JWKS, `"kid":"k1"`) || !cl.RequireDPoP {
		t.Fatalf("stored %+v %v", cl, err)
	}
	// Inline JWKS; a private key, a secret or --public alongside are refused.
	privSet, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: priv}}})
	for name, args := range map[string][]string{
		"private key":       {"--jwks", string(privSet)},
		"with a secret":     {"--jwks", string(set), "--secret", "a-secret-a-secret-a-secret"},
		"public":            {"--jwks", string(set), "--public"},
		"both jwks flags":   {"--jwks", string(set), "--jwks-file", file},
		"not a key set":     {"--jwks", "[1,2]"},
		"missing jwks file": {"--jwks-file", filepath.Join(t.TempDir(), "none.json")},
	} {
		args = append([]string{"client", "create", "--id", "bad-" + strings.ReplaceAll(name, " ", "-"), "--redirect-uri", "https://x.example/cb"}, args...)
		if _, _, err := c.run("", args...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Update: DPoP on and off; keys replaced; no JWKS for a secret client.
	c.ok("", "client", "create", "--id", "web", "--redirect-uri", "https://web.example/cb")
	v = decodeJSON[operator.ClientView](t, c.ok("", "client", "update", "--id", "web", "--require-dpop"))
	if !v.RequireDPoP || v.AuthMethod != "client_secret_basic" {
		t.Fatalf("update --require-dpop: %+v", v)
	}
	v = decodeJSON[operator.ClientView](t, c.ok("", "client", "update", "--id", "web", "--no-require-dpop"))
	if v.RequireDPoP {
		t.Fatal("--no-require-dpop did not clear it")
	}
	if _, _, err := c.run("", "client", "update", "--id", "web", "--jwks", string(set)); err == nil {
		t.Error("a secret client was given a JWKS")
	}
	pub2, _, _ := ed25519.GenerateKey(rand.Reader)
	set2, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "k1"}, {Key: pub2, KeyID: "k2"}}})
	v = decodeJSON[operator.ClientView](t, c.ok("", "client", "update", "--id", "svc", "--jwks", string(set2)))
	if len(v.JWKSKeys) != 2 {
		t.Fatalf("keys after update: %v", v.JWKSKeys)
	}
}
