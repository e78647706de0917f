package keys

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/latchkey-dev/latchkey/internal/store"
)

// The fast path must produce what go-jose produced: the same header
// members and claims, and a signature go-jose verifies.
func TestCompactSignMatchesGoJose(t *testing.T) {
	claims := map[string]any{"iss": "https://issuer.example", "sub": "u1", "aud": []string{"c1"}, "exp": 2000000000, "amr": []string{"pwd"}, "n": "<&>"}
	for _, alg := range Algorithms {
		t.Run(string(alg), func(t *testing.T) {
			priv, err := Generate(alg)
			if err != nil {
				t.Fatal(err)
			}
			k := &signingKey{rec: &store.SigningKey{ID: "kid-1", Alg: string(alg)}, signer: priv}
			fast, ok, err := compactSign(k, "at+jwt", claims)
			if !ok || err != nil {
				t.Fatalf("compactSign: ok %v, %v", ok, err)
			}
			s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: priv, KeyID: "kid-1"}},
				(&jose.SignerOptions{}).WithType("at+jwt"))
			if err != nil {
				t.Fatal(err)
			}
			slow, err := jwt.Signed(s).Claims(claims).Serialize()
			if err != nil {
				t.Fatal(err)
			}
			if h1, h2 := decodePart(t, fast, 0), decodePart(t, slow, 0); !maps.Equal(h1, h2) {
				t.Errorf("header %v, go-jose's %v", h1, h2)
			}
			pub := priv.(crypto.Signer).Public()
			for name, raw := range map[string]string{"fast": fast, "go-jose": slow} {
				tok, err := jwt.ParseSigned(raw, Algorithms)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				var got map[string]any
				if err := tok.Claims(pub, &got); err != nil {
					t.Fatalf("%s: signature: %v", name, err)
				}
				if got["sub"] != "u1" || got["n"] != "<&>" || got["exp"].(float64) != 2000000000 {
					t.Errorf("%s: claims %v", name, got)
				}
			}
			// One key signs tokens of several types: each gets its own
			// header (cached per key and typ), and the first is unchanged.
			for _, typ := range []string{"JWT", "", "at+jwt"} {
				tok, ok, err := compactSign(k, typ, claims)
				if !ok || err != nil {
					t.Fatalf("compactSign(%q): ok %v, %v", typ, ok, err)
				}
				h := decodePart(t, tok, 0)
				if got, _ := h["typ"].(string); got != typ || h["kid"] != "kid-1" || h["alg"] != string(alg) {
					t.Errorf("typ %q: header %v", typ, h)
				}
				if _, has := h["typ"]; typ == "" && has {
					t.Errorf("empty typ: header %v has a typ member", h)
				}
			}
			// A flipped bit in the signature is refused.
			parts := strings.Split(fast, ".")
			sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
			sig[0] ^= 1
			tok, err := jwt.ParseSigned(parts[0]+"."+parts[1]+"."+base64.RawURLEncoding.EncodeToString(sig), Algorithms)
			if err == nil {
				var got map[string]any
				err = tok.Claims(pub, &got)
			}
			if err == nil {
				t.Error("tampered signature verified")
			}
		})
	}
}

func TestCompactSignOtherKeysFallBack(t *testing.T) {
	rsaKey, _ := Generate(jose.RS256)
	k := &signingKey{rec: &store.SigningKey{ID: "x", Alg: string(jose.ES256)}, signer: rsaKey.(crypto.Signer)}
	if _, ok, _ := compactSign(k, "JWT", map[string]any{}); ok {
		t.Error("an RSA key recorded as ES256 took the fast path")
	}
}

func decodePart(t *testing.T, tok string, i int) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
