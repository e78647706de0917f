// Package token defines Latchkey's token formats: self-describing,
// unforgeable refresh tokens, and the claims of JWT ID and access tokens.
//
// A refresh token is
//
//	lkrt_ base64url( version ‖ family id (16 bytes) ‖ generation (8 bytes) ‖ HMAC-SHA256(key, version ‖ family id ‖ generation) )
//
// The prefix lets secret scanners find leaked tokens. The 256-bit MAC makes
// it unforgeable; its key is derived from the master key, never stored. The
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
	refreshVersion = 1
	familyIDLen    = 16
	macLen         = sha256.Size
	refreshRawLen  = 1 + familyIDLen + 8 + macLen
	// MaxLen bounds any token we accept as input.
	MaxLen = 4096
)

var b64 = base64.RawURLEncoding

// ErrMalformed means the value is not a refresh token we could have issued.
var ErrMalformed = errors.New("token: malformed or forged refresh token")

// RefreshCodec mints and checks refresh tokens.
type RefreshCodec struct{ key []byte }

// NewRefreshCodec returns a codec with a 32-byte MAC key.
func NewRefreshCodec(key []byte) *RefreshCodec { return &RefreshCodec{key: key} }

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
	raw := make([]byte, 0, refreshRawLen)
	raw = append(raw, refreshVersion)
	raw = append(raw, fid...)
	raw = binary.BigEndian.AppendUint64(raw, uint64(gen))
	raw = append(raw, c.mac(raw)...)
	return RefreshPrefix + b64.EncodeToString(raw), nil
}

func (c *RefreshCodec) mac(msg []byte) []byte {
	h := hmac.New(sha256.New, c.key)
	h.Write(msg)
	return h.Sum(nil)
}

// Parse checks a refresh token's MAC in constant time and returns its family
// id and generation.
func (c *RefreshCodec) Parse(tok string) (familyID string, gen int64, err error) {
	body, ok := strings.CutPrefix(tok, RefreshPrefix)
	// Exact length: base64 decoding skips \r and \n, so a looser check would
	// accept many spellings of one token.
	if !ok || len(tok) > MaxLen || len(body) != b64.EncodedLen(refreshRawLen) {
		return "", 0, ErrMalformed
	}
	raw, err := b64.DecodeString(body)
	if err != nil || len(raw) != refreshRawLen || raw[0] != refreshVersion {
		return "", 0, ErrMalformed
	}
	msg, tag := raw[:refreshRawLen-macLen], raw[refreshRawLen-macLen:]
	if !hmac.Equal(tag, c.mac(msg)) {
		return "", 0, ErrMalformed
	}
	g := binary.BigEndian.Uint64(msg[1+familyIDLen:])
	if g > 1<<62 {
		return "", 0, ErrMalformed
	}
	return b64.EncodeToString(msg[1 : 1+familyIDLen]), int64(g), nil
}

// IsRefreshToken reports whether s looks like a refresh token (prefix only).
func IsRefreshToken(s string) bool { return strings.HasPrefix(s, RefreshPrefix) }
