package keys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

func jwksOf(t *testing.T, ks ...jose.JSONWebKey) string {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: ks})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseClientJWKS(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	ok := map[string]string{
		"one EC key":         jwksOf(t, jose.JSONWebKey{Key: &ec.PublicKey}),
		"one Ed25519 key":    jwksOf(t, jose.JSONWebKey{Key: edPub, Use: "sig", Algorithm: "EdDSA"}),
		"RSA 2048":           jwksOf(t, jose.JSONWebKey{Key: &rsa2048.PublicKey, Algorithm: "PS256"}),
		"two keys with kids": jwksOf(t, jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "a"}, jose.JSONWebKey{Key: edPub, KeyID: "b"}),
	}
	for name, s := range ok {
		if _, err := ParseClientJWKS(s); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	many := make([]jose.JSONWebKey, MaxClientKeys+1)
	for i := range many {
		many[i] = jose.JSONWebKey{Key: edPub, KeyID: strings.Repeat("k", i+1)}
	}
	bad := map[string]string{
		"not JSON":          "{",
		"no keys":           `{"keys":[]}`,
		"private EC key":    jwksOf(t, jose.JSONWebKey{Key: ec}),
		"private Ed25519":   jwksOf(t, jose.JSONWebKey{Key: edPriv}),
		"symmetric":         `{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0"}]}`,
		"P-384":             jwksOf(t, jose.JSONWebKey{Key: &p384.PublicKey}),
		"RSA 1024":          jwksOf(t, jose.JSONWebKey{Key: &rsa1024.PublicKey}),
		"use enc":           jwksOf(t, jose.JSONWebKey{Key: &ec.PublicKey, Use: "enc"}),
		"alg HS256":         jwksOf(t, jose.JSONWebKey{Key: &ec.PublicKey, Algorithm: "HS256"}),
		"alg none":          jwksOf(t, jose.JSONWebKey{Key: &ec.PublicKey, Algorithm: "none"}),
		"two keys, no kids": jwksOf(t, jose.JSONWebKey{Key: &ec.PublicKey}, jose.JSONWebKey{Key: edPub}),
		"duplicate kid":     jwksOf(t, jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "a"}, jose.JSONWebKey{Key: edPub, KeyID: "a"}),
		"too many keys":     jwksOf(t, many...),
		"too large":         `{"keys":[],"x":"` + strings.Repeat("a", MaxClientJWKS) + `"}`,
	}
	for name, s := range bad {
		if _, err := ParseClientJWKS(s); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
