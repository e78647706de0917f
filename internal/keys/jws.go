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
	"errors"
	"unsafe"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
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
	var sigLen int
	switch key := k.signer.(type) {
	case *rsa.PrivateKey:
		ok, sigLen = alg == jose.RS256, key.Size()
	case *ecdsa.PrivateKey:
		ok, sigLen = alg == jose.ES256 && key.Curve == elliptic.P256(), 64
	case ed25519.PrivateKey:
		ok, sigLen = alg == jose.EdDSA, ed25519.SignatureSize
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
	// signature; the string is the buffer itself (no copy).
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(header)+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(sigLen))
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
		var der []byte
		if der, err = ecdsa.SignASN1(rand.Reader, key, digest[:]); err == nil {
			var rs [64]byte
			sig, err = rs[:], rawECDSA(der, rs[:])
		}
	case ed25519.PrivateKey:
		sig = ed25519.Sign(key, input)
	}
	if err != nil {
		return "", true, err
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	// buf is not written again (input, which shares it, is done with).
	return unsafe.String(unsafe.SliceData(buf), len(buf)), true, nil
}

// rawECDSA writes the ASN.1 DER ECDSA signature der (SEQUENCE of the two
// INTEGERs r and s) into out as JWS wants it (RFC 7518 §3.4): r then s,
// each a big-endian unsigned integer of len(out)/2 bytes. crypto/ecdsa's
// Sign returns the two as big.Ints, parsed from the same DER, for two
// allocations each.
func rawECDSA(der, out []byte) error {
	var seq, r, s cryptobyte.String
	in := cryptobyte.String(der)
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1(&r, asn1.INTEGER) || !seq.ReadASN1(&s, asn1.INTEGER) || !seq.Empty() {
		return errors.New("keys: malformed ECDSA signature")
	}
	n := len(out) / 2
	for i, v := range []cryptobyte.String{r, s} {
		// Two's complement: r and s are positive, and have a leading zero
		// byte when their top bit is set.
		if len(v) == 0 || v[0]&0x80 != 0 {
			return errors.New("keys: ECDSA signature integer out of range")
		}
		if len(v) > 1 && v[0] == 0 {
			if v[1]&0x80 == 0 { // DER: no leading zero that is not needed
				return errors.New("keys: malformed ECDSA signature")
			}
			v = v[1:]
		}
		if len(v) > n || len(v) == 1 && v[0] == 0 {
			return errors.New("keys: ECDSA signature integer out of range")
		}
		half := out[i*n : (i+1)*n]
		clear(half)
		copy(half[n-len(v):], v)
	}
	return nil
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
