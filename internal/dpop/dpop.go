// Package dpop verifies DPoP proofs (RFC 9449): the JWTs a client signs with
// its own key for each request, so that the tokens issued to it are bound
// to that key and useless to anyone who steals them without it.
//
// Parse checks one proof on its own (form, signature, claims); Verifier
// adds what needs shared state: the jti replay cache (in the store, so it
// holds across instances) and server nonces (stateless: an HMAC of a time
// window under a key derived from the master key, so every instance issues
// and accepts the same nonces).
package dpop

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/secret"
	"github.com/latchkey-dev/latchkey/internal/store"
)

const (
	// HeaderType is the proof's "typ" (RFC 9449 §4.2).
	HeaderType = "dpop+jwt"
	// MaxProofLen bounds the DPoP header (an RSA-4096 jwk fits easily).
	MaxProofLen = 8 << 10
	// DefaultWindow is how far a proof's iat may be from the server's clock.
	DefaultWindow = 60 * time.Second
	// NonceLifetime is the length of a nonce window; a nonce is accepted in
	// its window and the next one.
	NonceLifetime = 5 * time.Minute

	maxJTI = 256
	maxHTU = 2048
)

var b64 = base64.RawURLEncoding

// Proof is a verified DPoP proof.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof's key, base64url:
	// what tokens are bound to (cnf.jkt, RFC 9449 §6.1).
	JKT      string
	ID       string // jti
	IssuedAt time.Time
	Nonce    string
}

// Request is what a proof must match.
type Request struct {
	// Method is the HTTP method (htm).
	Method string
	// URL is the endpoint's public URL (htu, compared without query and
	// fragment).
	URL string
	// AccessToken, when set, must be what the proof's ath hashes (RFC 9449
	// §4.3: proofs presented with an access token to a resource).
	AccessToken string
}

type claims struct {
	ID       string           `json:"jti"`
	Method   string           `json:"htm"`
	URL      string           `json:"htu"`
	IssuedAt *jwt.NumericDate `json:"iat"`
	ATH      string           `json:"ath"`
	Nonce    string           `json:"nonce"`
}

// Invalid returns the invalid_dpop_proof error (RFC 9449 §5, §7.1).
func Invalid(format string, args ...any) *oauth.Error {
	return oauth.New(oauth.InvalidDPoPProof, format, args...)
}

// Parse verifies a proof's form, signature and claims against req at now
// (RFC 9449 §4.3, checks 2 to 11 but the nonce and the replay check):
// a compact JWS with typ dpop+jwt, an asymmetric algorithm from
// keys.ClientAlgorithms, a public jwk header that verifies the signature,
// htm and htu matching the request, iat within window of now, a jti, and —
// when req has an access token — ath matching it.
func Parse(raw string, req Request, now time.Time, window time.Duration) (*Proof, error) {
	if raw == "" {
		return nil, Invalid("The DPoP proof is empty.")
	}
	if len(raw) > MaxProofLen {
		return nil, Invalid("The DPoP proof is longer than %d bytes.", MaxProofLen)
	}
	if window <= 0 {
		window = DefaultWindow
	}
	tok, err := jwt.ParseSigned(raw, keys.ClientAlgorithms)
	if err != nil {
		return nil, Invalid("The DPoP proof is not a JWT signed with one of %s.", algList()).WithCause(err)
	}
	if len(tok.Headers) != 1 {
		return nil, Invalid("The DPoP proof must have exactly one signature.")
	}
	h := tok.Headers[0]
	if t, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(t, HeaderType) {
		return nil, Invalid("The DPoP proof's typ header must be %q.", HeaderType)
	}
	if h.JSONWebKey == nil {
		return nil, Invalid("The DPoP proof has no jwk header.")
	}
	// go-jose already refuses private embedded keys; check again, and the
	// key's type and size.
	if err := keys.CheckClientKey(h.JSONWebKey); err != nil {
		return nil, Invalid("The DPoP proof's jwk is not acceptable: %s.", err.Error())
	}
	var c claims
	if err := tok.Claims(h.JSONWebKey.Key, &c); err != nil {
		return nil, Invalid("The DPoP proof's signature does not verify with its jwk, or its claims are malformed.").WithCause(err)
	}
	switch {
	case c.ID == "" || len(c.ID) > maxJTI:
		return nil, Invalid("The DPoP proof needs a jti of 1 to %d characters.", maxJTI)
	case c.Method != req.Method:
		return nil, Invalid("The DPoP proof's htm does not match the request method %s.", req.Method)
	case len(c.URL) > maxHTU || !sameURL(c.URL, req.URL):
		return nil, Invalid("The DPoP proof's htu must be %s.", req.URL)
	case c.IssuedAt == nil:
		return nil, Invalid("The DPoP proof has no iat.")
	}
	iat := c.IssuedAt.Time()
	if d := now.Sub(iat); d > window || d < -window {
		return nil, Invalid("The DPoP proof's iat is more than %s away from the server's time; make a fresh proof.", window)
	}
	if req.AccessToken != "" {
		want := AccessTokenHash(req.AccessToken)
		if subtle.ConstantTimeCompare([]byte(c.ATH), []byte(want)) != 1 {
			return nil, Invalid("The DPoP proof's ath does not match the access token.")
		}
	}
	jkt, err := Thumbprint(h.JSONWebKey)
	if err != nil {
		return nil, Invalid("The DPoP proof's jwk has no thumbprint.").WithCause(err)
	}
	return &Proof{JKT: jkt, ID: c.ID, IssuedAt: iat, Nonce: c.Nonce}, nil
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of k, base64url.
func Thumbprint(k *jose.JSONWebKey) (string, error) {
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return b64.EncodeToString(tp), nil
}

// AccessTokenHash is the ath of a proof: base64url(SHA-256(token)).
func AccessTokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return b64.EncodeToString(sum[:])
}

// ValidJKT reports whether s looks like a SHA-256 thumbprint (the dpop_jkt
// parameter, RFC 9449 §10).
func ValidJKT(s string) bool {
	b, err := b64.Strict().DecodeString(s)
	return err == nil && len(b) == sha256.Size && len(s) == 43
}

// sameURL compares htu with the endpoint URL per RFC 9449 §4.3: without
// query and fragment, scheme and host case-insensitively, default ports
// dropped.
func sameURL(htu, want string) bool {
	a, err1 := url.Parse(htu)
	b, err2 := url.Parse(want)
	if err1 != nil || err2 != nil || !a.IsAbs() || a.Opaque != "" || a.User != nil {
		return false
	}
	return normal(a) == normal(b)
}

func normal(u *url.URL) string {
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	host = strings.TrimSuffix(host, map[string]string{"https": ":443", "http": ":80"}[scheme])
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	return scheme + "://" + host + p
}

func algList() string { return strings.Join(keys.ClientAlgNames(), ", ") }

// Verifier verifies the DPoP header of requests.
type Verifier struct {
	Store store.Store
	Now   func() time.Time
	// Window is how far iat may be from now; 0 means DefaultWindow.
	Window time.Duration
	// NonceKey keys server nonces; nil disables them.
	NonceKey []byte
	// RequireNonce makes every proof carry a current server nonce
	// (RFC 9449 §8); it needs NonceKey.
	RequireNonce bool
}

// ErrNoProof is returned by Verify when the request has no DPoP header.
var ErrNoProof = errors.New("dpop: no proof")

// Verify checks the request's DPoP header against req: one header, a proof
// Parse accepts, a valid server nonce when nonces are required (or when
// the proof carries one), and a jti never seen before with this key. It
// returns ErrNoProof without a header; other errors are *oauth.Error
// (invalid_dpop_proof, use_dpop_nonce) or store trouble.
func (v *Verifier) Verify(ctx context.Context, r *http.Request, req Request) (*Proof, error) {
	hs := r.Header.Values("DPoP")
	switch {
	case len(hs) == 0:
		return nil, ErrNoProof
	case len(hs) > 1:
		return nil, Invalid("Send one DPoP header, not %d.", len(hs))
	}
	now := v.Now()
	p, err := Parse(strings.TrimSpace(hs[0]), req, now, v.Window)
	if err != nil {
		return nil, err
	}
	if v.NonceKey != nil && (v.RequireNonce || p.Nonce != "") && !v.validNonce(p.Nonce, now) {
		return nil, oauth.New(oauth.UseDPoPNonce, "Make a new DPoP proof with the server nonce in the DPoP-Nonce response header.")
	}
	// RFC 9449 §11.1: a proof is accepted once. The record lives until the
	// proof's iat is out of the window, so no replay can outlive it; the key
	// is namespaced by the key thumbprint, so clients cannot collide.
	window := v.Window
	if window <= 0 {
		window = DefaultWindow
	}
	until := p.IssuedAt.Add(window)
	if !until.After(now) {
		until = now
	}
	err = v.Store.UseJTI(ctx, secret.SHA256("dpop|"+p.JKT+"|"+p.ID), until.Add(time.Second), now)
	if errors.Is(err, store.ErrAlreadyUsed) {
		return nil, Invalid("This DPoP proof was already used; make a fresh proof (new jti) for every request.")
	}
	if err != nil {
		return nil, oauth.Wrap(err, "record DPoP proof")
	}
	return p, nil
}

// Nonce returns the current server nonce ("" when nonces are disabled), for
// the DPoP-Nonce response header.
func (v *Verifier) Nonce() string {
	if v.NonceKey == nil {
		return ""
	}
	return v.nonceAt(v.Now().Unix() / int64(NonceLifetime/time.Second))
}

func (v *Verifier) nonceAt(window int64) string {
	msg := binary.BigEndian.AppendUint64(nil, uint64(window))
	h := hmac.New(sha256.New, v.NonceKey)
	h.Write([]byte("latchkey/dpop-nonce|"))
	h.Write(msg)
	return b64.EncodeToString(append(msg, h.Sum(nil)[:16]...))
}

// validNonce accepts the nonce of the current window and of the previous
// one, so a nonce lives between one and two NonceLifetimes.
func (v *Verifier) validNonce(n string, now time.Time) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	cur := now.Unix() / int64(NonceLifetime/time.Second)
	for _, w := range []int64{cur, cur - 1} {
		if hmac.Equal([]byte(n), []byte(v.nonceAt(w))) {
			return true
		}
	}
	return false
}
