package token

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

var (
	testKey  = bytes.Repeat([]byte{0x42}, 32)
	otherKey = bytes.Repeat([]byte{0x43}, 32)
	testFID  = base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef"))
)

func mustMint(t testing.TB, c *RefreshCodec, fid string, gen int64) string {
	t.Helper()
	tok, err := c.Mint(fid, gen)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRefreshRoundTrip(t *testing.T) {
	c := NewRefreshCodec(testKey)
	for _, gen := range []int64{0, 1, 2, 255, 256, 1 << 32, 1<<62 - 1, 1 << 62} {
		tok := mustMint(t, c, testFID, gen)
		if !strings.HasPrefix(tok, RefreshPrefix) || !IsRefreshToken(tok) {
			t.Fatalf("token %q lacks the prefix", tok)
		}
		if len(tok) != len(RefreshPrefix)+78 {
			t.Fatalf("token length %d, want %d", len(tok), len(RefreshPrefix)+78)
		}
		fid, g, err := c.Parse(tok)
		if err != nil {
			t.Fatalf("gen %d: %v", gen, err)
		}
		if fid != testFID || g != gen {
			t.Fatalf("Parse = %q, %d; want %q, %d", fid, g, testFID, gen)
		}
	}
	// Different generations give different tokens; minting is deterministic.
	if mustMint(t, c, testFID, 1) == mustMint(t, c, testFID, 2) {
		t.Error("generations 1 and 2 mint the same token")
	}
	if mustMint(t, c, testFID, 7) != mustMint(t, c, testFID, 7) {
		t.Error("minting is not deterministic (the grace successor could not be recomputed)")
	}
}

func TestRefreshLayout(t *testing.T) {
	// Rebuild the token independently from the documented layout.
	kidMAC := hmac.New(sha256.New, testKey)
	kidMAC.Write([]byte("latchkey/refresh-token/key-id"))
	kid := kidMAC.Sum(nil)[0]
	fid := []byte("0123456789abcdef")
	msg := append([]byte{2, kid}, fid...)
	msg = binary.BigEndian.AppendUint64(msg, 5)
	h := hmac.New(sha256.New, testKey)
	h.Write(msg)
	want := "lkrt_" + base64.RawURLEncoding.EncodeToString(h.Sum(msg))
	if got := mustMint(t, NewRefreshCodec(testKey), testFID, 5); got != want {
		t.Fatalf("Mint = %q, want %q", got, want)
	}
}

// legacyMint builds a version 1 token (no key id), as minted before key ids.
func legacyMint(key []byte, gen int64) string {
	msg := append([]byte{1}, []byte("0123456789abcdef")...)
	msg = binary.BigEndian.AppendUint64(msg, uint64(gen))
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return "lkrt_" + base64.RawURLEncoding.EncodeToString(h.Sum(msg))
}

// After a master-key rotation the codec mints under the new key and still
// accepts tokens minted under the old ones — and version 1 tokens under
// any of them — but never a token of a key it was not given.
func TestRefreshKeyRotation(t *testing.T) {
	oldC := NewRefreshCodec(testKey)
	newC := NewRefreshCodec(otherKey, testKey)
	third := bytes.Repeat([]byte{0x44}, 32)
	oldTok := mustMint(t, oldC, testFID, 7)
	for name, tok := range map[string]string{"old key": oldTok, "legacy old key": legacyMint(testKey, 7), "legacy new key": legacyMint(otherKey, 7)} {
		fid, gen, err := newC.Parse(tok)
		if err != nil || fid != testFID || gen != 7 {
			t.Errorf("%s: Parse = %q, %d, %v", name, fid, gen, err)
		}
	}
	minted := mustMint(t, newC, testFID, 8)
	if minted != mustMint(t, NewRefreshCodec(otherKey), testFID, 8) {
		t.Error("the rotated codec does not mint under its first key")
	}
	if _, _, err := oldC.Parse(minted); !errors.Is(err, ErrMalformed) {
		t.Error("a codec without the new key accepted a token minted under it")
	}
	for name, tok := range map[string]string{"third key": mustMint(t, NewRefreshCodec(third), testFID, 7), "legacy third key": legacyMint(third, 7)} {
		if _, _, err := newC.Parse(tok); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s accepted: %v", name, err)
		}
	}
	// A token whose key id names one key but whose MAC is another key's.
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(oldTok, RefreshPrefix))
	raw[1] = RefreshKeyID(otherKey)
	if raw[1] != RefreshKeyID(testKey) {
		if _, _, err := newC.Parse(RefreshPrefix + base64.RawURLEncoding.EncodeToString(raw)); !errors.Is(err, ErrMalformed) {
			t.Error("a token with another key's id was accepted")
		}
	}
}

func TestMintRejectsBadFamilyID(t *testing.T) {
	c := NewRefreshCodec(testKey)
	for _, fid := range []string{"", "short", base64.RawURLEncoding.EncodeToString(make([]byte, 17)), "!!!!!!!!!!!!!!!!!!!!!!", base64.StdEncoding.EncodeToString(make([]byte, 16))} {
		if tok, err := c.Mint(fid, 1); err == nil {
			t.Errorf("Mint(%q) = %q, want an error", fid, tok)
		}
	}
}

func TestParseRejects(t *testing.T) {
	c := NewRefreshCodec(testKey)
	tok := mustMint(t, c, testFID, 3)
	body := strings.TrimPrefix(tok, RefreshPrefix)
	raw, _ := base64.RawURLEncoding.DecodeString(body)

	reencode := func(b []byte) string { return RefreshPrefix + base64.RawURLEncoding.EncodeToString(b) }
	withMAC := func(msg []byte) string { // a correctly MACed message
		h := hmac.New(sha256.New, testKey)
		h.Write(msg)
		return reencode(h.Sum(append([]byte(nil), msg...)))
	}
	wrongVersion := append([]byte(nil), raw[:26]...)
	wrongVersion[0] = 3
	v1Long := append([]byte(nil), raw[:26]...) // version 1 at version 2's length
	v1Long[0] = 1
	hugeGen := append([]byte(nil), raw[:18]...)
	hugeGen = binary.BigEndian.AppendUint64(hugeGen, 1<<62+1)
	negGen := append([]byte(nil), raw[:18]...)
	negGen = binary.BigEndian.AppendUint64(negGen, 1<<63)

	tests := map[string]string{
		"empty":                 "",
		"prefix only":           RefreshPrefix,
		"no prefix":             body,
		"wrong prefix":          "lkat_" + body,
		"upper-case prefix":     "LKRT_" + body,
		"truncated by one":      tok[:len(tok)-1],
		"truncated by four":     tok[:len(tok)-4],
		"extra character":       tok + "A",
		"extra block":           tok + "AAAA",
		"padding":               tok + "=",
		"std alphabet":          RefreshPrefix + base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 57)),
		"other key":             mustMint(t, NewRefreshCodec(otherKey), testFID, 3),
		"wrong version":         withMAC(wrongVersion),
		"version 1, long":       withMAC(v1Long),
		"nonzero padding bits":  tok[:len(tok)-1] + string(tok[len(tok)-1]+1),
		"generation over 2^62":  withMAC(hugeGen),
		"negative generation":   withMAC(negGen),
		"newline inside":        tok[:40] + "\n" + tok[40:],
		"CR inside":             tok[:40] + "\r" + tok[40:],
		"trailing newline":      tok + "\n",
		"space inside":          tok[:40] + " " + tok[40:],
		"oversized":             RefreshPrefix + strings.Repeat("A", MaxLen),
		"zero bytes right size": reencode(make([]byte, refreshRawLen)),
		"mac cut short":         reencode(raw[:len(raw)-1]),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			fid, gen, err := c.Parse(in)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%q) = %q, %d, %v; want ErrMalformed", in, fid, gen, err)
			}
			if fid != "" || gen != 0 {
				t.Fatalf("Parse returned data with an error: %q %d", fid, gen)
			}
		})
	}
}

func TestParseRejectsEveryBitFlip(t *testing.T) {
	c := NewRefreshCodec(testKey)
	tok := mustMint(t, c, testFID, 9)
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, RefreshPrefix))
	for i := range raw {
		for bit := range 8 {
			b := append([]byte(nil), raw...)
			b[i] ^= 1 << bit
			mod := RefreshPrefix + base64.RawURLEncoding.EncodeToString(b)
			if _, _, err := c.Parse(mod); !errors.Is(err, ErrMalformed) {
				t.Fatalf("flipping bit %d of byte %d was accepted (err %v)", bit, i, err)
			}
		}
	}
	// And every character of the text form, replaced by another alphabet character.
	for i := len(RefreshPrefix); i < len(tok); i++ {
		repl := byte('A')
		if tok[i] == 'A' {
			repl = 'B'
		}
		mod := tok[:i] + string(repl) + tok[i+1:]
		if _, _, err := c.Parse(mod); !errors.Is(err, ErrMalformed) {
			t.Fatalf("changing character %d was accepted", i)
		}
	}
}

func TestNewFamilyID(t *testing.T) {
	fid := NewFamilyID(func(b []byte) {
		for i := range b {
			b[i] = byte(i)
		}
	})
	if want := base64.RawURLEncoding.EncodeToString([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}); fid != want {
		t.Fatalf("NewFamilyID = %q, want %q", fid, want)
	}
	if _, err := NewRefreshCodec(testKey).Mint(fid, 1); err != nil {
		t.Fatalf("a new family id cannot be minted: %v", err)
	}
}

func TestIsRefreshToken(t *testing.T) {
	for s, want := range map[string]bool{"lkrt_x": true, "lkrt_": true, "lkrt": false, "": false, "eyJhbGciOi": false, " lkrt_x": false} {
		if got := IsRefreshToken(s); got != want {
			t.Errorf("IsRefreshToken(%q) = %v", s, got)
		}
	}
}

func TestAccessTokenHash(t *testing.T) {
	// Computed independently: the left half of SHA-256 (RS256, ES256) or
	// of SHA-512 (EdDSA with Ed25519), base64url.
	for _, at := range []string{"", "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", "eyJhbGciOiJSUzI1NiJ9.payload.sig"} {
		sum := sha256.Sum256([]byte(at))
		want := base64.RawURLEncoding.EncodeToString(sum[:16])
		for _, alg := range []string{"RS256", "ES256"} {
			if got := AccessTokenHash(alg, at); got != want {
				t.Errorf("AccessTokenHash(%s, %q) = %q, want %q", alg, at, got, want)
			}
		}
		sum512 := sha512.Sum512([]byte(at))
		if got, want := AccessTokenHash("EdDSA", at), base64.RawURLEncoding.EncodeToString(sum512[:32]); got != want {
			t.Errorf("AccessTokenHash(EdDSA, %q) = %q, want %q", at, got, want)
		}
	}
	// Fixed vectors: SHA-256("abc") starts ba7816bf8f01cfea414140de5dae2223,
	// SHA-512("abc") ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a.
	for alg, want := range map[string]string{
		"RS256": "ungWv48Bz-pBQUDeXa4iIw", "ES256": "ungWv48Bz-pBQUDeXa4iIw",
		"EdDSA": "3a81oZNherrMQXNJriBBMRLm-k6JqX6iCp7u5ktV05o",
	} {
		if got := AccessTokenHash(alg, "abc"); got != want {
			t.Errorf("AccessTokenHash(%s, abc) = %q, want %q", alg, got, want)
		}
	}
}

func FuzzParseRefresh(f *testing.F) {
	c := NewRefreshCodec(testKey)
	for _, gen := range []int64{0, 1, 42, 1 << 40, 1 << 62} {
		f.Add(mustMint(f, c, testFID, gen))
	}
	tok := mustMint(f, c, testFID, 5)
	for _, s := range []string{"", RefreshPrefix, "lkrt_AAAA", legacyMint(testKey, 3), legacyMint(otherKey, 3), tok[:len(tok)-1], tok + "A", tok[:30] + "\n" + tok[30:], "lkat_" + tok[5:], strings.Repeat("A", 81)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fid, gen, err := c.Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error %v is not ErrMalformed", err)
			}
			return
		}
		if gen < 0 || gen > 1<<62 {
			t.Fatalf("Parse(%q) returned generation %d", s, gen)
		}
		again, err := c.Mint(fid, gen)
		if err != nil {
			t.Fatalf("Parse(%q) returned family %q that cannot be minted: %v", s, fid, err)
		}
		if again != s && s != legacyMint(testKey, gen) {
			t.Fatalf("Parse accepted %q, which is not the canonical token %q", s, again)
		}
	})
}
