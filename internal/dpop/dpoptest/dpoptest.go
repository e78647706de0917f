// Package dpoptest makes DPoP proofs (RFC 9449) the way a client does, for
// tests: a key, proofs for requests, and an http.RoundTripper that signs a
// proof for every request (so golang.org/x/oauth2 can drive a DPoP flow)
// and retries once with the server's nonce when asked to.
package dpoptest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Key is a client's DPoP key.
type Key struct {
	Alg     jose.SignatureAlgorithm
	Private crypto.Signer
	Public  jose.JSONWebKey
	// JKT is the RFC 7638 thumbprint (what tokens get bound to).
	JKT string
	// Now is the client's clock for iat (nil: time.Now).
	Now func() time.Time
}

// NewKey generates a key for alg (ES256, EdDSA, RS256 or PS256).
func NewKey(t testing.TB, alg jose.SignatureAlgorithm) *Key {
	t.Helper()
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case jose.RS256, jose.PS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("dpoptest: no key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	pub := jose.JSONWebKey{Key: priv.Public()}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return &Key{Alg: alg, Private: priv, Public: pub, JKT: base64.RawURLEncoding.EncodeToString(tp)}
}

// FixedKey returns an Ed25519 key derived from seed (32 bytes): the same in
// every process, as fuzz workers need.
func FixedKey(t testing.TB, seed []byte) *Key {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(seed)
	pub := jose.JSONWebKey{Key: priv.Public()}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return &Key{Alg: jose.EdDSA, Private: priv, Public: pub, JKT: base64.RawURLEncoding.EncodeToString(tp)}
}

// Claims are a proof's claims; Proof fills the usual ones.
type Claims map[string]any

// Option edits a proof before it is signed: its claims and header.
type Option func(c Claims, h map[jose.HeaderKey]any)

// WithToken adds ath for an access token.
func WithToken(at string) Option {
	return func(c Claims, _ map[jose.HeaderKey]any) { c["ath"] = ATH(at) }
}

// WithNonce adds a server nonce.
func WithNonce(n string) Option { return func(c Claims, _ map[jose.HeaderKey]any) { c["nonce"] = n } }

// Set sets (or, with nil, deletes) a claim.
func Set(k string, v any) Option {
	return func(c Claims, _ map[jose.HeaderKey]any) {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
}

// Header sets (or, with nil, deletes) a protected header.
func Header(k string, v any) Option {
	return func(_ Claims, h map[jose.HeaderKey]any) {
		if v == nil {
			delete(h, jose.HeaderKey(k))
		} else {
			h[jose.HeaderKey(k)] = v
		}
	}
}

// ATH is base64url(SHA-256(at)).
func ATH(at string) string {
	sum := sha256.Sum256([]byte(at))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (k *Key) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

func newJTI() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Proof signs a proof for method and url (query and fragment dropped).
func (k *Key) Proof(t testing.TB, method, url string, opts ...Option) string {
	t.Helper()
	if i := strings.IndexAny(url, "?#"); i >= 0 {
		url = url[:i]
	}
	c := Claims{"jti": newJTI(), "htm": method, "htu": url, "iat": k.now().Unix()}
	h := map[jose.HeaderKey]any{"typ": "dpop+jwt", "jwk": k.Public}
	for _, o := range opts {
		o(c, h)
	}
	return k.Sign(t, c, h)
}

// Sign signs claims with the key and protected headers h (alg is the key's).
func (k *Key) Sign(t testing.TB, c Claims, h map[jose.HeaderKey]any) string {
	t.Helper()
	opts := &jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{}}
	for hk, v := range h {
		if hk == "jwk" {
			// go-jose wants the key itself through EmbedJWK; a custom jwk
			// value (e.g. a private key) goes in as raw JSON.
			if pk, ok := v.(jose.JSONWebKey); ok {
				b, err := pk.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				opts.ExtraHeaders[hk] = json.RawMessage(b)
				continue
			}
		}
		opts.ExtraHeaders[hk] = v
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: k.Private}, opts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(s).Claims(map[string]any(c)).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Transport adds a fresh DPoP proof to every request through Base (nil:
// http.DefaultTransport). When a request carries "Authorization: DPoP AT"
// the proof gets ath. When the server answers use_dpop_nonce, it retries
// once with the nonce, and uses the latest nonce from then on.
type Transport struct {
	T    testing.TB
	Key  *Key
	Base http.RoundTripper

	mu    sync.Mutex
	nonce string
	// Proofs counts the proofs sent.
	Proofs int
}

// RoundTrip implements http.RoundTripper.
func (tr *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := tr.Base
	if base == nil {
		base = http.DefaultTransport
	}
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	for attempt := 0; ; attempt++ {
		r := req.Clone(req.Context())
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		var opts []Option
		if a, ok := strings.CutPrefix(r.Header.Get("Authorization"), "DPoP "); ok {
			opts = append(opts, WithToken(a))
		}
		tr.mu.Lock()
		if tr.nonce != "" {
			opts = append(opts, WithNonce(tr.nonce))
		}
		tr.Proofs++
		tr.mu.Unlock()
		r.Header.Set("DPoP", tr.Key.Proof(tr.T, r.Method, r.URL.String(), opts...))
		resp, err := base.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		if n := resp.Header.Get("DPoP-Nonce"); n != "" {
			tr.mu.Lock()
			tr.nonce = n
			tr.mu.Unlock()
		}
		if attempt == 0 && resp.Header.Get("DPoP-Nonce") != "" && wantsNonce(resp) {
			resp.Body.Close()
			continue
		}
		return resp, nil
	}
}

// wantsNonce reports a use_dpop_nonce answer (JSON body or WWW-Authenticate),
// keeping the body readable.
func wantsNonce(resp *http.Response) bool {
	if strings.Contains(resp.Header.Get("WWW-Authenticate"), "use_dpop_nonce") {
		return true
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return bytes.Contains(b, []byte(`"use_dpop_nonce"`))
}
