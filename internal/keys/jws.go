package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"

	"github.com/go-jose/go-jose/v4"
)

// compactSign is Sign's fast path: it builds the JWS Compact Serialization
// (RFC 7515 §7.1) of claims directly, with encoding/json and one signature,
// for the key types Latchkey generates (RSA with RS256, P-256 with ES256,
// Ed25519 with EdDSA). go-jose's builder marshals the claims, unmarshals
// them into a map, merges and marshals again, which cost as much CPU as an
// ES256 signature itself. The result is an ordinary JWS that go-jose (and
// any JOSE library) verifies; the header has the same members as go-jose's
// (alg, kid, typ). ok is false for any other key, and Sign then uses go-jose.
func compactSign(k *signingKey, typ string, claims any) (tok string, ok bool, err error) {
	alg := jose.SignatureAlgorithm(k.rec.Alg)
	switch key := k.signer.(type) {
	case *rsa.PrivateKey:
		ok = alg == jose.RS256
	case *ecdsa.PrivateKey:
		ok = alg == jose.ES256 && key.Curve == elliptic.P256()
	case ed25519.PrivateKey:
		ok = alg == jose.EdDSA
	}
	if !ok {
		return "", false, nil
	}
	header, err := k.header(alg, typ)
	if err != nil {
		return "", true, err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", true, err
	}
	// One buffer for the whole token: header '.' payload, signed, then '.'
	// signature; the string is made once at the end.
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(header)+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(512))
	buf = append(buf, header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	input := buf

	var sig []byte
	switch key := k.signer.(type) {
	case *rsa.PrivateKey:
		digest := sha256.Sum256(input)
		sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	case *ecdsa.PrivateKey:
		digest := sha256.Sum256(input)
		r, s, serr := ecdsa.Sign(rand.Reader, key, digest[:])
		if err = serr; err == nil {
			// RFC 7518 §3.4: R and S as 32-byte big-endian integers.
			var rs [64]byte
			r.FillBytes(rs[:32])
			s.FillBytes(rs[32:])
			sig = rs[:]
		}
	case ed25519.PrivateKey:
		sig = ed25519.Sign(key, input)
	}
	if err != nil {
		return "", true, err
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), true, nil
}

// header returns the base64url-encoded protected header of k's tokens of
// type typ (empty: no typ member), computed once per key and typ.
func (k *signingKey) header(alg jose.SignatureAlgorithm, typ string) (string, error) {
	if h, ok := k.headers.Load(typ); ok {
		return h.(string), nil
	}
	b, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ,omitempty"`
	}{string(alg), k.rec.ID, typ})
	if err != nil {
		return "", err
	}
	h, _ := k.headers.LoadOrStore(typ, base64.RawURLEncoding.EncodeToString(b))
	return h.(string), nil
}
