package dpop_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey-dev/latchkey/internal/dpop"
	"github.com/latchkey-dev/latchkey/internal/dpop/dpoptest"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/testdb"
)

const tokenURL = "https://issuer.example/token"

var req = dpop.Request{Method: http.MethodPost, URL: tokenURL}

func wantInvalid(t *testing.T, err error, code string) {
	t.Helper()
	var e *oauth.Error
	if !errors.As(err, &e) || e.Code != code || e.Description == "" {
		t.Fatalf("got %v, want %s with a description", err, code)
	}
}

func TestParseAcceptsEveryAlgorithm(t *testing.T) {
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256, jose.PS256} {
		t.Run(string(alg), func(t *testing.T) {
			k := dpoptest.NewKey(t, alg)
			now := time.Now()
			p, err := dpop.Parse(k.Proof(t, "POST", tokenURL), req, now, 0)
			if err != nil {
				t.Fatal(err)
			}
			if p.JKT != k.JKT || p.ID == "" || p.IssuedAt.Unix() != now.Unix() {
				t.Fatalf("proof %+v, key %s", p, k.JKT)
			}
		})
	}
}

// unsigned builds a compact JWS with the given header and claims and the
// signature sig(signing input) (nil: empty signature, as alg none has).
func unsigned(t *testing.T, header, claims map[string]any, sig func([]byte) []byte) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := enc(header) + "." + enc(claims)
	s := ""
	if sig != nil {
		s = base64.RawURLEncoding.EncodeToString(sig([]byte(in)))
	}
	return in + "." + s
}

func TestParseRejects(t *testing.T) {
	k := dpoptest.NewKey(t, jose.ES256)
	other := dpoptest.NewKey(t, jose.ES256)
	now := time.Now()
	pubJSON, _ := k.Public.MarshalJSON()
	var pubMap map[string]any
	_ = json.Unmarshal(pubJSON, &pubMap)
	claims := map[string]any{"jti": "j1", "htm": "POST", "htu": tokenURL, "iat": now.Unix()}
	privJWK := jose.JSONWebKey{Key: k.Private}
	weak := dpoptest.NewKey(t, jose.RS256)
	weak.Private = mustRSA1024(t)
	weak.Public = jose.JSONWebKey{Key: weak.Private.Public()}

	cases := map[string]string{
		"empty":          "",
		"garbage":        "not a jwt",
		"oversized":      strings.Repeat("a", dpop.MaxProofLen+1),
		"no typ":         k.Proof(t, "POST", tokenURL, dpoptest.Header("typ", nil)),
		"typ JWT":        k.Proof(t, "POST", tokenURL, dpoptest.Header("typ", "JWT")),
		"typ at+jwt":     k.Proof(t, "POST", tokenURL, dpoptest.Header("typ", "at+jwt")),
		"no jwk":         k.Proof(t, "POST", tokenURL, dpoptest.Header("jwk", nil)),
		"private jwk":    k.Proof(t, "POST", tokenURL, dpoptest.Header("jwk", privJWK)),
		"other key jwk":  k.Proof(t, "POST", tokenURL, dpoptest.Header("jwk", other.Public)),
		"RSA 1024":       weak.Proof(t, "POST", tokenURL),
		"GET":            k.Proof(t, "GET", tokenURL),
		"post lowercase": k.Proof(t, "post", tokenURL),
		"other endpoint": k.Proof(t, "POST", "https://issuer.example/revoke"),
		"other host":     k.Proof(t, "POST", "https://evil.example/token"),
		"http":           k.Proof(t, "POST", "http://issuer.example/token"),
		"userinfo@host":  k.Proof(t, "POST", "https://user@issuer.example/token"),
		"relative htu":   k.Proof(t, "POST", "/token"),
		"no htu":         k.Proof(t, "POST", tokenURL, dpoptest.Set("htu", nil)),
		"no htm":         k.Proof(t, "POST", tokenURL, dpoptest.Set("htm", nil)),
		"no jti":         k.Proof(t, "POST", tokenURL, dpoptest.Set("jti", nil)),
		"long jti":       k.Proof(t, "POST", tokenURL, dpoptest.Set("jti", strings.Repeat("j", 300))),
		"no iat":         k.Proof(t, "POST", tokenURL, dpoptest.Set("iat", nil)),
		"iat string":     k.Proof(t, "POST", tokenURL, dpoptest.Set("iat", "now")),
		"old iat":        k.Proof(t, "POST", tokenURL, dpoptest.Set("iat", now.Add(-61*time.Second).Unix())),
		"future iat":     k.Proof(t, "POST", tokenURL, dpoptest.Set("iat", now.Add(61*time.Second).Unix())),
		"alg none":       unsigned(t, map[string]any{"alg": "none", "typ": "dpop+jwt", "jwk": pubMap}, claims, nil),
		// Algorithm confusion: an HMAC keyed with the public key.
		"HS256 with the public key": unsigned(t, map[string]any{"alg": "HS256", "typ": "dpop+jwt", "jwk": pubMap}, claims, func(in []byte) []byte {
			h := hmac.New(sha256.New, pubJSON)
			h.Write(in)
			return h.Sum(nil)
		}),
		"oct jwk": unsigned(t, map[string]any{"alg": "HS256", "typ": "dpop+jwt", "jwk": map[string]any{"kty": "oct", "k": "c2VjcmV0"}}, claims, func(in []byte) []byte {
			h := hmac.New(sha256.New, []byte("secret"))
			h.Write(in)
			return h.Sum(nil)
		}),
		"bad signature": func() string {
			p := k.Proof(t, "POST", tokenURL)
			return p[:len(p)-4] + "AAAA"
		}(),
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			p, err := dpop.Parse(raw, req, now, 0)
			if p != nil {
				t.Fatalf("accepted: %+v", p)
			}
			wantInvalid(t, err, oauth.InvalidDPoPProof)
		})
	}
}

func TestParseHTUAndATH(t *testing.T) {
	k := dpoptest.NewKey(t, jose.EdDSA)
	now := time.Now()
	// RFC 9449 §4.3: query and fragment are ignored; scheme and host are
	// case-insensitive; a default port is the same URL.
	for _, htu := range []string{tokenURL + "?x=1", tokenURL + "#f", "HTTPS://Issuer.Example/token", "https://issuer.example:443/token"} {
		raw := k.Sign(t, dpoptest.Claims{"jti": "x" + htu, "htm": "POST", "htu": htu, "iat": now.Unix()},
			map[jose.HeaderKey]any{"typ": "dpop+jwt", "jwk": k.Public})
		if _, err := dpop.Parse(raw, req, now, 0); err != nil {
			t.Errorf("htu %s: %v", htu, err)
		}
	}
	// The path is not case-insensitive.
	if _, err := dpop.Parse(k.Proof(t, "POST", "https://issuer.example/TOKEN"), req, now, 0); err == nil {
		t.Error("a different path was accepted")
	}
	at := "an-access-token"
	r := dpop.Request{Method: "GET", URL: "https://issuer.example/userinfo", AccessToken: at}
	if _, err := dpop.Parse(k.Proof(t, "GET", r.URL, dpoptest.WithToken(at)), r, now, 0); err != nil {
		t.Fatalf("ath: %v", err)
	}
	for name, opt := range map[string]dpoptest.Option{
		"no ath":    dpoptest.Set("ath", nil),
		"other ath": dpoptest.WithToken("another token"),
	} {
		_, err := dpop.Parse(k.Proof(t, "GET", r.URL, opt), r, now, 0)
		if err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func newVerifier(t *testing.T, st store.Store, now *time.Time) *dpop.Verifier {
	return &dpop.Verifier{Store: st, Now: func() time.Time { return *now }}
}

func request(proofs ...string) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, tokenURL, nil)
	for _, p := range proofs {
		r.Header.Add("DPoP", p)
	}
	return r
}

// The replay cache lives in the store: a proof used through one handle is
// refused through another (another instance).
func TestVerifierReplay(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)
	st2, err := st.Reopen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st2.Close() })
	now := time.Now()
	v1, v2 := newVerifier(t, st, &now), newVerifier(t, st2, &now)
	k := dpoptest.NewKey(t, jose.ES256)
	k.Now = func() time.Time { return now }
	p := k.Proof(t, "POST", tokenURL)
	if _, err := v1.Verify(ctx, request(p), req); err != nil {
		t.Fatal(err)
	}
	_, err = v2.Verify(ctx, request(p), req)
	wantInvalid(t, err, oauth.InvalidDPoPProof)
	// Another key may use the same jti.
	k2 := dpoptest.NewKey(t, jose.ES256)
	k2.Now = k.Now
	if _, err := v2.Verify(ctx, request(k2.Proof(t, "POST", tokenURL, dpoptest.Set("jti", "same"))), req); err != nil {
		t.Fatal(err)
	}
	if _, err := v1.Verify(ctx, request(k.Proof(t, "POST", tokenURL, dpoptest.Set("jti", "same"))), req); err != nil {
		t.Fatal(err)
	}
	if _, err := v1.Verify(ctx, request(), req); !errors.Is(err, dpop.ErrNoProof) {
		t.Fatalf("no header: %v", err)
	}
	_, err = v1.Verify(ctx, request(k.Proof(t, "POST", tokenURL), k.Proof(t, "POST", tokenURL)), req)
	wantInvalid(t, err, oauth.InvalidDPoPProof)
	// Once the proof is out of its window, it is refused for its iat, and
	// the sweeper may forget its jti.
	now = now.Add(2 * time.Minute)
	_, err = v1.Verify(ctx, request(p), req)
	wantInvalid(t, err, oauth.InvalidDPoPProof)
	if n, err := st.Sweep(ctx, now, time.Hour, 100); err != nil || n == 0 {
		t.Fatalf("sweep deleted %d used jtis: %v", n, err)
	}
}

func TestNonces(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)
	now := time.Now()
	v := newVerifier(t, st, &now)
	v.NonceKey, v.RequireNonce = []byte("0123456789abcdef0123456789abcdef"), true
	k := dpoptest.NewKey(t, jose.ES256)
	k.Now = func() time.Time { return now }

	_, err := v.Verify(ctx, request(k.Proof(t, "POST", tokenURL)), req)
	wantInvalid(t, err, oauth.UseDPoPNonce)
	n := v.Nonce()
	if n == "" || len(n) > 64 {
		t.Fatalf("nonce %q", n)
	}
	if _, err := v.Verify(ctx, request(k.Proof(t, "POST", tokenURL, dpoptest.WithNonce(n))), req); err != nil {
		t.Fatal(err)
	}
	// Another instance (same key, no shared memory) accepts it too.
	v2 := newVerifier(t, st, &now)
	v2.NonceKey, v2.RequireNonce = v.NonceKey, true
	if v2.Nonce() != n {
		t.Fatal("two instances issue different nonces")
	}
	// A nonce stays good for at least one lifetime, and dies within two.
	now = now.Add(dpop.NonceLifetime)
	if _, err := v2.Verify(ctx, request(k.Proof(t, "POST", tokenURL, dpoptest.WithNonce(n))), req); err != nil {
		t.Fatalf("nonce after one lifetime: %v", err)
	}
	now = now.Add(dpop.NonceLifetime)
	_, err = v2.Verify(ctx, request(k.Proof(t, "POST", tokenURL, dpoptest.WithNonce(n))), req)
	wantInvalid(t, err, oauth.UseDPoPNonce)
	// A nonce under another key, or made up, is refused.
	other := &dpop.Verifier{Store: st, Now: v.Now, NonceKey: []byte("another key, another key, anothe")}
	for _, bad := range []string{other.Nonce(), "made-up", strings.Repeat("A", 100)} {
		_, err = v.Verify(ctx, request(k.Proof(t, "POST", tokenURL, dpoptest.WithNonce(bad))), req)
		wantInvalid(t, err, oauth.UseDPoPNonce)
	}
	// Not required: a proof without nonce passes, one with a bad nonce not.
	v.RequireNonce = false
	if _, err := v.Verify(ctx, request(k.Proof(t, "POST", tokenURL)), req); err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(ctx, request(k.Proof(t, "POST", tokenURL, dpoptest.WithNonce("stale"))), req)
	wantInvalid(t, err, oauth.UseDPoPNonce)
}

func TestValidJKT(t *testing.T) {
	k := dpoptest.NewKey(t, jose.ES256)
	if !dpop.ValidJKT(k.JKT) {
		t.Fatalf("%s refused", k.JKT)
	}
	for _, s := range []string{"", "abc", k.JKT + "A", k.JKT[:42], strings.Repeat("+", 43), k.JKT[:42] + "="} {
		if dpop.ValidJKT(s) {
			t.Errorf("ValidJKT(%q)", s)
		}
	}
}

// FuzzParseProof: no input panics, every refusal is invalid_dpop_proof with
// a description, and whatever is accepted is a proof for the request.
func FuzzParseProof(f *testing.F) {
	// Fuzz workers rebuild this in their own processes: the key must be
	// the same everywhere.
	k := dpoptest.FixedKey(f, []byte("latchkey fuzz dpop key, 32 bytes"))
	now := time.Unix(1_700_000_000, 0)
	k.Now = func() time.Time { return now }
	valid := k.Proof(f, "POST", tokenURL)
	for _, s := range []string{
		valid, "", ".", "..", "a.b.c", valid + ".", valid[:len(valid)/2],
		strings.Replace(valid, ".", "..", 1),
		"eyJhbGciOiJub25lIiwidHlwIjoiZHBvcCtqd3QifQ.eyJqdGkiOiJ4In0.",
		"eyJhbGciOiJIUzI1NiIsInR5cCI6ImRwb3Arand0In0.eyJqdGkiOiJ4In0.c2ln",
		"eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIn19.e30.AA",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := dpop.Parse(raw, req, now, 0)
		if err != nil {
			var e *oauth.Error
			if !errors.As(err, &e) || e.Code != oauth.InvalidDPoPProof || e.Description == "" {
				t.Fatalf("Parse(%q): error %v is not invalid_dpop_proof", raw, err)
			}
			return
		}
		if p.JKT != k.JKT || p.ID == "" || len(p.ID) > 256 {
			t.Fatalf("Parse(%q) accepted %+v", raw, p)
		}
	})
}

func mustRSA1024(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
