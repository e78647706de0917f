package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
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

// rawECDSARef is rawECDSA by encoding/asn1 and math/big, for comparison.
func rawECDSARef(der []byte) ([]byte, bool) {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &rs)
	if err != nil || len(rest) > 0 {
		return nil, false
	}
	if canon, err := asn1.Marshal(rs); err != nil || !bytes.Equal(canon, der) { // two integers, nothing more
		return nil, false
	}
	if rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.BitLen() > 256 || rs.S.BitLen() > 256 {
		return nil, false
	}
	out := make([]byte, 64)
	rs.R.FillBytes(out[:32])
	rs.S.FillBytes(out[32:])
	return out, true
}

// rawECDSA turns DER signatures into JWS's fixed-width r‖s, left-padding
// short integers, and refuses anything that is not two positive integers
// that fit.
func TestRawECDSA(t *testing.T) {
	der := func(r, s *big.Int) []byte {
		b, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	max256 := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))
	cases := map[string][]byte{
		"small":          der(big.NewInt(1), big.NewInt(0x7f)),
		"top bit set":    der(max256, big.NewInt(0x80)),
		"257 bits":       der(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1)),
		"zero":           der(big.NewInt(0), big.NewInt(1)),
		"negative":       der(big.NewInt(-5), big.NewInt(1)),
		"trailing data":  append(der(big.NewInt(1), big.NewInt(2)), 0),
		"three integers": func() []byte { b, _ := asn1.Marshal(struct{ R, S, T int }{1, 2, 3}); return b }(),
		"not a sequence": {0x02, 0x01, 0x01},
		"empty":          {},
		"truncated":      der(max256, max256)[:20],
		"empty integer":  {0x30, 0x05, 0x02, 0x00, 0x02, 0x01, 0x01},
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	short := 0
	for i := range 2000 { // about 1 in 128 has a short r or s
		digest := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		if len(sig) < 70 {
			short++
		}
		cases[fmt.Sprintf("signature %d", i)] = sig
	}
	if short == 0 {
		t.Log("no signature with a short integer this time")
	}
	for name, in := range cases {
		want, ok := rawECDSARef(in)
		got := make([]byte, 64)
		err := rawECDSA(in, got)
		if ok != (err == nil) {
			t.Errorf("%s: err %v, reference accepts: %v", name, err, ok)
			continue
		}
		if ok && !bytes.Equal(got, want) {
			t.Errorf("%s: %x, want %x", name, got, want)
		}
	}
}

func FuzzRawECDSA(f *testing.F) {
	f.Add([]byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, der []byte) {
		out := make([]byte, 64)
		err := rawECDSA(der, out)
		want, ok := rawECDSARef(der)
		if ok != (err == nil) || ok && !bytes.Equal(out, want) {
			t.Fatalf("%x: %x, %v; reference %x, %v", der, out, err, want, ok)
		}
	})
}
