// Package token defines Latchkey's token formats: self-describing,
// unforgeable refresh tokens, and the claims of JWT ID and access tokens.
//
// A refresh token is
//
//	lkrt_ base64url( version (2) ‖ key id (1 byte) ‖ family id (16 bytes) ‖ generation (8 bytes) ‖ HMAC-SHA256(key, everything before) )
//
// The prefix lets secret scanners find leaked tokens. The 256-bit MAC makes
// it unforgeable; its key is derived from the master key, never stored.
// The key id names the MAC key, so that after a master-key rotation the
// tokens minted under the old key still verify (NewRefreshCodec's old keys)
// while new ones are minted under the new key. Version 1 tokens (no key id,
// minted before key ids existed) are still accepted under any key. The
// database keeps one row per family (its current generation) and no token
// material at all, so a database reader cannot use or recover a token.
// Rotation is a compare-and-swap on the generation; every older generation is
// recognisable as reuse, and the grace-window successor can be recomputed
// rather than stored. See docs/design.md for why this beats "a random token
// per row, stored as SHA-256".
package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
)

// RefreshPrefix starts every refresh token.
const RefreshPrefix = "lkrt_"

const (
	refreshVersion = 2
	legacyVersion  = 1 // no key id
	familyIDLen    = 16
	macLen         = sha256.Size
	refreshRawLen  = 2 + familyIDLen + 8 + macLen
	legacyRawLen   = 1 + familyIDLen + 8 + macLen
	// MaxLen bounds any token we accept as input.
	MaxLen = 4096
)

var (
	b64       = base64.RawURLEncoding
	b64Strict = base64.RawURLEncoding.Strict()
)

// ErrMalformed means the value is not a refresh token we could have issued.
var ErrMalformed = errors.New("token: malformed or forged refresh token")

// RefreshCodec mints and checks refresh tokens.
type RefreshCodec struct {
	keys []refreshKey // keys[0] mints; all verify
}

type refreshKey struct {
	id  byte
	key []byte
}

// NewRefreshCodec returns a codec that mints with the 32-byte MAC key key
// and also accepts tokens minted under the old keys (after a master-key
// rotation: see docs/SECURITY.md).
func NewRefreshCodec(key []byte, old ...[]byte) *RefreshCodec {
	c := &RefreshCodec{}
	for _, k := range append([][]byte{key}, old...) {
		c.keys = append(c.keys, refreshKey{id: RefreshKeyID(k), key: k})
	}
	return c
}

// RefreshKeyID is the key id byte of a MAC key: the first byte of an HMAC
// of a fixed label, so every instance derives the same id and the id says
// nothing useful about the key. Two keys may share an id; Parse then tries
// both.
func RefreshKeyID(key []byte) byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("latchkey/refresh-token/key-id"))
	return h.Sum(nil)[0]
}

// NewFamilyID returns a new random family id (base64url of 16 bytes).
func NewFamilyID(random func([]byte)) string {
	b := make([]byte, familyIDLen)
	random(b)
	return b64.EncodeToString(b)
}

// Mint returns the refresh token for generation gen of family familyID.
func (c *RefreshCodec) Mint(familyID string, gen int64) (string, error) {
	fid, err := b64.DecodeString(familyID)
	if err != nil || len(fid) != familyIDLen {
		return "", errors.New("token: bad family id")
	}
	k := c.keys[0]
	raw := make([]byte, 0, refreshRawLen)
	raw = append(raw, refreshVersion, k.id)
	raw = append(raw, fid...)
	raw = binary.BigEndian.AppendUint64(raw, uint64(gen))
	raw = append(raw, mac(k.key, raw)...)
	return RefreshPrefix + b64.EncodeToString(raw), nil
}

func mac(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)
}

// Parse checks a refresh token's MAC in constant time (under the key its
// key id names, or under every key for a version 1 token) and returns its
// family id and generation.
func (c *RefreshCodec) Parse(tok string) (familyID string, gen int64, err error) {
	body, ok := strings.CutPrefix(tok, RefreshPrefix)
	// Exact length: base64 decoding skips \r and \n, so a looser check would
	// accept many spellings of one token.
	if !ok || len(tok) > MaxLen || (len(body) != b64.EncodedLen(refreshRawLen) && len(body) != b64.EncodedLen(legacyRawLen)) {
		return "", 0, ErrMalformed
	}
	// Strict: a version 2 token's last character carries 4 unused bits,
	// which must be zero so that each token has one spelling.
	raw, err := b64Strict.DecodeString(body)
	// Decoding skips \r and \n: a version 1 token with two of them has a
	// version 2 token's length. The body must be exactly the raw bytes' encoding.
	if err != nil || len(body) != b64.EncodedLen(len(raw)) {
		return "", 0, ErrMalformed
	}
	var head int // bytes before the family id
	switch {
	case len(raw) == refreshRawLen && raw[0] == refreshVersion:
		head = 2
	case len(raw) == legacyRawLen && raw[0] == legacyVersion:
		head = 1
	default:
		return "", 0, ErrMalformed
	}
	msg, tag := raw[:len(raw)-macLen], raw[len(raw)-macLen:]
	valid := false
	for _, k := range c.keys {
		if head == 2 && k.id != raw[1] {
			continue
		}
		if hmac.Equal(tag, mac(k.key, msg)) {
			valid = true
			break
		}
	}
	if !valid {
		return "", 0, ErrMalformed
	}
	g := binary.BigEndian.Uint64(msg[head+familyIDLen:])
	if g > 1<<62 {
		return "", 0, ErrMalformed
	}
	return b64.EncodeToString(msg[head : head+familyIDLen]), int64(g), nil
}

// IsRefreshToken reports whether s looks like a refresh token (prefix only).
func IsRefreshToken(s string) bool { return strings.HasPrefix(s, RefreshPrefix) }
