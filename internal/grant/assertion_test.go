package grant

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/store"
)

const (
	testIssuer = "https://issuer.example"
	testClient = "pkjwt-client"
)

var testAudiences = []string{testIssuer, testIssuer + "/token"}

// assertionKey is fixed, so fuzz workers (separate processes) share it.
func assertionKey(seed string) (ed25519.PrivateKey, jose.JSONWebKey) {
	priv := ed25519.NewKeyFromSeed([]byte(seed))
	return priv, jose.JSONWebKey{Key: priv.Public(), KeyID: "k1", Algorithm: string(jose.EdDSA), Use: "sig"}
}

func testClientWith(t testing.TB, pub ...jose.JSONWebKey) *store.Client {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: pub})
	if err != nil {
		t.Fatal(err)
	}
	return &store.Client{ID: testClient, JWKS: string(b)}
}

func sign(t testing.TB, priv any, alg jose.SignatureAlgorithm, kid string, claims map[string]any, extra map[jose.HeaderKey]any) string {
	t.Helper()
	opts := &jose.SignerOptions{ExtraHeaders: extra}
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func goodClaims(now time.Time) map[string]any {
	return map[string]any{"iss": testClient, "sub": testClient, "aud": testIssuer + "/token",
		"exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "jti": "jti-1"}
}

func with(c map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for kk, vv := range c {
		out[kk] = vv
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func TestVerifyAssertion(t *testing.T) {
	priv, pub := assertionKey("latchkey test assertion key 32by")
	otherPriv, otherPub := assertionKey("another test assertion key 32 by")
	otherPub.KeyID = "k2"
	client := testClientWith(t, pub, otherPub)
	now := time.Now()
	c := goodClaims(now)

	for name, claims := range map[string]map[string]any{
		"aud token endpoint": c,
		"aud issuer":         with(c, "aud", testIssuer),
		"aud list":           with(c, "aud", []string{"https://other.example", testIssuer}),
		"no iat":             with(c, "iat", nil),
		"exp at the limit":   with(c, "exp", now.Add(MaxAssertionLifetime).Unix()),
	} {
		if _, err := VerifyAssertion(sign(t, priv, jose.EdDSA, "k1", claims, nil), client, testAudiences, now); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The second registered key works too.
	if _, err := VerifyAssertion(sign(t, otherPriv, jose.EdDSA, "k2", c, nil), client, testAudiences, now); err != nil {
		t.Errorf("second key: %v", err)
	}

	pubJSON, _ := pub.MarshalJSON()
	hs256 := func() string { // algorithm confusion: HMAC keyed with the public key
		enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
		in := enc(map[string]any{"alg": "HS256", "kid": "k1"}) + "." + enc(c)
		h := hmac.New(sha256.New, pubJSON)
		h.Write([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
	}()
	none := func() string {
		enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
		return enc(map[string]any{"alg": "none"}) + "." + enc(c) + "."
	}()
	for name, raw := range map[string]string{
		"alg none":                  none,
		"HS256 with the public key": hs256,
		"unregistered key":          sign(t, ed25519.NewKeyFromSeed([]byte("an unregistered key, 32 bytes...")), jose.EdDSA, "k1", c, nil),
		"kid of another key":        sign(t, priv, jose.EdDSA, "k2", c, nil),
		"unknown kid":               sign(t, priv, jose.EdDSA, "k9", c, nil),
		"other iss":                 sign(t, priv, jose.EdDSA, "k1", with(c, "iss", "someone"), nil),
		"other sub":                 sign(t, priv, jose.EdDSA, "k1", with(c, "sub", "someone"), nil),
		"no aud":                    sign(t, priv, jose.EdDSA, "k1", with(c, "aud", nil), nil),
		"other aud":                 sign(t, priv, jose.EdDSA, "k1", with(c, "aud", "https://other.example/token"), nil),
		"aud revoke endpoint":       sign(t, priv, jose.EdDSA, "k1", with(c, "aud", testIssuer+"/revoke"), nil),
		"no exp":                    sign(t, priv, jose.EdDSA, "k1", with(c, "exp", nil), nil),
		"expired":                   sign(t, priv, jose.EdDSA, "k1", with(c, "exp", now.Add(-time.Minute).Unix()), nil),
		"exp too far":               sign(t, priv, jose.EdDSA, "k1", with(c, "exp", now.Add(10*time.Minute).Unix()), nil),
		"nbf in the future":         sign(t, priv, jose.EdDSA, "k1", with(c, "nbf", now.Add(5*time.Minute).Unix()), nil),
		"iat in the future":         sign(t, priv, jose.EdDSA, "k1", with(c, "iat", now.Add(5*time.Minute).Unix()), nil),
		"no jti":                    sign(t, priv, jose.EdDSA, "k1", with(c, "jti", nil), nil),
		"typ dpop+jwt":              sign(t, priv, jose.EdDSA, "k1", c, map[jose.HeaderKey]any{"typ": "dpop+jwt"}),
		"typ at+jwt":                sign(t, priv, jose.EdDSA, "k1", c, map[jose.HeaderKey]any{"typ": "at+jwt"}),
		"oversized":                 strings.Repeat("a", MaxAssertionLen+1),
		"garbage":                   "not.a.jwt",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := VerifyAssertion(raw, client, testAudiences, now)
			if !errors.Is(err, &oauth.Error{Code: oauth.InvalidClient}) || oauth.As(err).Description == "" {
				t.Fatalf("got %v, want invalid_client", err)
			}
		})
	}
}

// FuzzClientAssertion: no input panics, refusals are invalid_client, and
// only an assertion for the client signed by its key is accepted.
func FuzzClientAssertion(f *testing.F) {
	priv, pub := assertionKey("latchkey fuzz assertion key 32by")
	client := testClientWith(f, pub)
	now := time.Unix(1_700_000_000, 0)
	valid := sign(f, priv, jose.EdDSA, "k1", goodClaims(now), nil)
	for _, s := range []string{valid, "", "..", "a.b.c", valid + "x", valid[:len(valid)-2],
		"eyJhbGciOiJub25lIn0.eyJpc3MiOiJwa2p3dC1jbGllbnQifQ.",
		sign(f, priv, jose.EdDSA, "", goodClaims(now), nil),
		sign(f, priv, jose.EdDSA, "k1", with(goodClaims(now), "aud", []string{testIssuer, "x"}), nil)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := VerifyAssertion(raw, client, testAudiences, now)
		if err != nil {
			if !errors.Is(err, &oauth.Error{Code: oauth.InvalidClient}) {
				t.Fatalf("VerifyAssertion(%q): %v is not invalid_client", raw, err)
			}
			return
		}
		if c.Issuer != testClient || c.Subject != testClient || c.ID == "" || c.Expiry == nil {
			t.Fatalf("VerifyAssertion(%q) accepted %+v", raw, c)
		}
	})
}
