package keys

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/testdb"
)

func masterKey(b byte) MasterKey { return MasterKey(bytes.Repeat([]byte{b}, 32)) }

func sealer(t *testing.T, m MasterKey) *Sealer {
	t.Helper()
	s, err := NewSealer(m, "signing-keys")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealerRoundTrip(t *testing.T) {
	s := sealer(t, masterKey(1))
	for _, pt := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte("private jwk "), 200)} {
		ct := s.Seal(pt, []byte("kid-1"))
		if len(pt) > 4 && bytes.Contains(ct, pt[:5]) {
			t.Errorf("ciphertext contains the plaintext")
		}
		if len(ct) != 12+len(pt)+16 {
			t.Errorf("ciphertext length %d for %d bytes (want nonce+pt+tag)", len(ct), len(pt))
		}
		got, err := s.Open(ct, []byte("kid-1"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("Open = %q, want %q", got, pt)
		}
	}
	// Random nonces: sealing twice differs.
	if bytes.Equal(s.Seal([]byte("a"), nil), s.Seal([]byte("a"), nil)) {
		t.Error("two seals of one value are identical")
	}
}

func TestSealerRejects(t *testing.T) {
	s := sealer(t, masterKey(1))
	ct := s.Seal([]byte("secret key material"), []byte("kid-1"))

	if _, err := s.Open(ct, []byte("kid-2")); err == nil {
		t.Error("wrong associated data accepted (a row's key could be swapped into another row)")
	}
	if _, err := s.Open(ct, nil); err == nil {
		t.Error("missing associated data accepted")
	}
	if _, err := sealer(t, masterKey(2)).Open(ct, []byte("kid-1")); err == nil || !strings.Contains(err.Error(), "wrong master key") {
		t.Errorf("other master key: %v", err)
	}
	other, _ := NewSealer(masterKey(1), "totp")
	if _, err := other.Open(ct, []byte("kid-1")); err == nil {
		t.Error("a sealer for another purpose opened the value")
	}
	for i := range ct {
		mod := append([]byte(nil), ct...)
		mod[i] ^= 0x01
		if _, err := s.Open(mod, []byte("kid-1")); err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
	if _, err := s.Open(ct[:11], []byte("kid-1")); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Errorf("short ciphertext: %v", err)
	}
	if _, err := s.Open(nil, nil); err == nil {
		t.Error("empty ciphertext accepted")
	}
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := NewSealer(make(MasterKey, n), "x"); err == nil {
			t.Errorf("NewSealer accepted a %d-byte master key", n)
		}
	}
}

func TestDerive(t *testing.T) {
	m := masterKey(7)
	a, b := m.Derive("refresh"), m.Derive("csrf")
	if len(a) != 32 || len(b) != 32 || bytes.Equal(a, b) {
		t.Fatalf("Derive: %x %x", a, b)
	}
	if !bytes.Equal(a, m.Derive("refresh")) {
		t.Error("Derive is not deterministic")
	}
	if bytes.Equal(a, masterKey(8).Derive("refresh")) {
		t.Error("different master keys derive the same subkey")
	}
	if bytes.Equal(a, m) {
		t.Error("subkey equals the master key")
	}
}

func newManager(t *testing.T, st store.Store, m MasterKey, alg jose.SignatureAlgorithm) *Manager {
	t.Helper()
	return &Manager{Store: st, Sealer: sealer(t, m), Alg: alg, Now: time.Now}
}

type claims struct {
	Sub string `json:"sub"`
	Iss string `json:"iss"`
	N   int    `json:"n"`
}

func TestInitCreatesOneActiveKeyAndReusesIt(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)
	m1 := newManager(t, st, masterKey(1), jose.RS256)
	if err := m1.Init(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := st.ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// An active key and a published next key (see rotate.go).
	if len(recs) != 2 || recs[0].State != store.KeyActive || recs[0].Alg != "RS256" || recs[0].ActivatedAt.IsZero() ||
		recs[1].State != store.KeyNext || recs[1].Alg != "RS256" {
		t.Fatalf("after Init: %+v %+v", *recs[0], recs[1:])
	}
	if bytes.Contains(recs[0].PrivateKey, []byte(`"d"`)) {
		t.Fatal("the stored private key is not encrypted")
	}
	if bytes.Contains(recs[0].PublicKey, []byte(`"d"`)) {
		t.Fatal("the stored public key contains the private exponent")
	}

	// A second instance on the same store (same master key) reuses the key.
	m2 := newManager(t, st, masterKey(1), jose.RS256)
	if err := m2.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m1.Init(ctx); err != nil { // and Init is idempotent
		t.Fatal(err)
	}
	recs, _ = st.ListSigningKeys(ctx)
	if len(recs) != 2 {
		t.Fatalf("second Init created another key: %d keys", len(recs))
	}
	// Each instance verifies the other's tokens.
	tok, err := m2.Sign(ctx, "", "JWT", claims{Sub: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	var got claims
	if err := m1.Verify(ctx, tok, "JWT", &got); err != nil || got.Sub != "alice" {
		t.Fatalf("cross-instance verify: %v %+v", err, got)
	}

	// An instance with another master key cannot load the set.
	m3 := newManager(t, st, masterKey(9), jose.RS256)
	if err := m3.Init(ctx); err == nil || !strings.Contains(err.Error(), recs[0].ID) {
		t.Errorf("wrong master key: Init = %v", err)
	}
}

func TestSignVerifyEveryAlgorithm(t *testing.T) {
	ctx := context.Background()
	for _, alg := range Algorithms {
		t.Run(string(alg), func(t *testing.T) {
			m := newManager(t, testdb.SQLite(t), masterKey(1), alg)
			if err := m.Init(ctx); err != nil {
				t.Fatal(err)
			}
			if got := m.Algorithms(); len(got) != 1 || got[0] != string(alg) {
				t.Errorf("Algorithms %q", got)
			}
			in := claims{Sub: "user-1", Iss: "https://id.example.com", N: 42}
			for _, typ := range []string{"JWT", "at+jwt"} {
				tok, err := m.Sign(ctx, "", typ, in)
				if err != nil {
					t.Fatal(err)
				}
				parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{alg})
				if err != nil {
					t.Fatalf("token is not a %s JWS: %v", alg, err)
				}
				h := parsed.Headers[0]
				if h.Algorithm != string(alg) || h.KeyID == "" || h.ExtraHeaders[jose.HeaderType] != typ {
					t.Errorf("header %+v", h)
				}
				var out claims
				if err := m.Verify(ctx, tok, typ, &out); err != nil {
					t.Fatal(err)
				}
				if out != in {
					t.Errorf("claims %+v, want %+v", out, in)
				}
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)
	m := newManager(t, st, masterKey(1), jose.ES256)
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	tok, err := m.Sign(ctx, "", "at+jwt", claims{Sub: "alice", N: 1})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")

	stranger := newManager(t, testdb.SQLite(t), masterKey(1), jose.ES256)
	if err := stranger.Init(ctx); err != nil {
		t.Fatal(err)
	}
	foreign, _ := stranger.Sign(ctx, "", "at+jwt", claims{Sub: "alice"})

	payload, _ := json.Marshal(claims{Sub: "mallory", N: 1})
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[0] ^= 1
	badSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)

	// A token naming our kid but signed with another algorithm and key.
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	kid := m.JWKS(ctx).Keys[0].KeyID
	edSigner, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: edPriv, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	algSwap, _ := jwt.Signed(edSigner).Claims(claims{Sub: "alice"}).Serialize()

	// An HS256 token "signed" with the public key bytes (alg confusion).
	hsSigner, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kid))
	hs, _ := jwt.Signed(hsSigner).Claims(claims{Sub: "alice"}).Serialize()

	tests := map[string]struct{ raw, typ, want string }{
		"wrong typ":         {tok, "JWT", `typ "at+jwt", want "JWT"`},
		"unknown kid":       {foreign, "at+jwt", "unknown key id"},
		"tampered payload":  {tampered, "at+jwt", ""},
		"bad signature":     {badSig, "at+jwt", ""},
		"algorithm swap":    {algSwap, "at+jwt", "algorithm does not match key"},
		"HS256 confusion":   {hs, "at+jwt", ""},
		"not a JWS":         {"not.a.jwt", "at+jwt", ""},
		"empty":             {"", "at+jwt", ""},
		"unsigned (none)":   {parts[0] + "." + parts[1] + ".", "at+jwt", ""},
		"two dots only":     {"..", "at+jwt", ""},
		"payload only":      {parts[1], "at+jwt", ""},
		"header of nothing": {parts[0], "at+jwt", ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var out claims
			err := m.Verify(ctx, tt.raw, tt.typ, &out)
			if err == nil {
				t.Fatalf("accepted, claims %+v", out)
			}
			if tt.want != "" && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if out.Sub != "" {
				t.Errorf("claims decoded despite the error: %+v", out)
			}
		})
	}
}

func TestJWKSHasOnlyPublicParts(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)
	// One key of each algorithm on one store.
	var ms []*Manager
	for _, alg := range Algorithms {
		m := newManager(t, st, masterKey(1), alg)
		if err := m.Init(ctx); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	m := ms[0]
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	raw, err := m.MarshalJWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 6 { // an active and a next key each
		t.Fatalf("JWKS has %d keys, want 6: %s", len(doc.Keys), raw)
	}
	kty := map[string]string{}
	for _, k := range doc.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				t.Errorf("key %v publishes private member %q", k["kid"], private)
			}
		}
		if k["use"] != "sig" || k["kid"] == "" || k["kid"] == nil {
			t.Errorf("key lacks use/kid: %v", k)
		}
		kty[k["alg"].(string)] = k["kty"].(string)
	}
	if kty["RS256"] != "RSA" || kty["ES256"] != "EC" || kty["EdDSA"] != "OKP" {
		t.Errorf("algorithms/key types: %v", kty)
	}
	// Each manager's tokens verify against the published keys.
	for _, mm := range ms {
		tok, err := mm.Sign(ctx, "", "JWT", claims{Sub: "x"})
		if err != nil {
			t.Fatal(err)
		}
		var out claims
		if err := m.Verify(ctx, tok, "JWT", &out); err != nil {
			t.Errorf("%s token: %v", mm.Alg, err)
		}
	}
}

func TestSignWithoutActiveKey(t *testing.T) {
	m := newManager(t, testdb.SQLite(t), masterKey(1), jose.RS256)
	if err := m.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sign(context.Background(), "", "JWT", claims{}); err == nil || !strings.Contains(err.Error(), "no active RS256 signing key") {
		t.Fatalf("Sign without a key: %v", err)
	}
}

func TestGenerateUnsupported(t *testing.T) {
	if _, err := Generate(jose.HS256); err == nil {
		t.Error("Generate(HS256) succeeded")
	}
}
