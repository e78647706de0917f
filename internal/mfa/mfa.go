// Package mfa implements the TOTP second factor (RFC 6238, via
// github.com/pquerna/otp) and recovery codes. A user's factor — the TOTP
// secret, the hashes of unused recovery codes, and the last accepted time
// step (so a code cannot be replayed) — is sealed with the master key into
// store.User.TOTPSecret, so it is updated atomically with the user row and
// needs no table of its own.
package mfa

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/secret"
	"github.com/latchkey-dev/latchkey/internal/store"
)

const (
	period   = 30
	skew     = 1 // accept the previous and next 30-second step (clock drift)
	digits   = otp.DigitsSix
	nRecover = 10
)

var opts = totp.ValidateOpts{Period: period, Skew: 0, Digits: digits, Algorithm: otp.AlgorithmSHA1}

// Factor is a user's enrolled second factor.
type Factor struct {
	Secret   string   `json:"s"` // base32 TOTP secret
	Recovery []string `json:"r"` // SHA-256 of each unused recovery code
	LastStep int64    `json:"l"` // last accepted time step
}

// Codec seals factors with the master key.
type Codec struct{ sealer *keys.Sealer }

// SealPurpose is the Sealer purpose of second factors.
const SealPurpose = "totp"

// NewCodec returns a Codec keyed from the master key; it also opens
// factors sealed under the old master keys (during a master key rotation).
func NewCodec(m keys.MasterKey, old ...keys.MasterKey) (*Codec, error) {
	s, err := keys.NewSealer(m, SealPurpose, old...)
	if err != nil {
		return nil, err
	}
	return &Codec{sealer: s}, nil
}

// Seal encrypts f for the user.
func (c *Codec) Seal(userID string, f *Factor) []byte {
	b, _ := json.Marshal(f)
	return c.sealer.Seal(b, []byte(userID))
}

// Open decrypts a sealed factor; nil input means "not enrolled".
func (c *Codec) Open(userID string, sealed []byte) (*Factor, error) {
	if len(sealed) == 0 {
		return nil, nil
	}
	b, err := c.sealer.Open(sealed, []byte(userID))
	if err != nil {
		return nil, err
	}
	var f Factor
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("mfa: %w", err)
	}
	return &f, nil
}

// SealPending seals a not-yet-confirmed secret for a hidden form field
// during enrollment, so no server-side state is needed between showing the
// QR code and checking the first code.
func (c *Codec) SealPending(userID, secretB32 string) string {
	return base64.RawURLEncoding.EncodeToString(c.sealer.Seal([]byte(secretB32), []byte("pending/"+userID)))
}

// OpenPending reverses SealPending.
func (c *Codec) OpenPending(userID, s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) > 512 {
		return "", errors.New("mfa: bad pending secret")
	}
	pt, err := c.sealer.Open(b, []byte("pending/"+userID))
	return string(pt), err
}

// NewKey generates a TOTP key for enrollment.
func NewKey(issuer, account string) (*otp.Key, error) {
	return totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Period: period, Digits: digits, Algorithm: otp.AlgorithmSHA1})
}

// KeyURL builds the otpauth:// URL of a secret (for QR codes).
func KeyURL(issuer, account, secretB32 string) (*otp.Key, error) {
	return otp.NewKeyFromURL(fmt.Sprintf("otpauth://totp/%s:%s?secret=%s&issuer=%s&period=%d&digits=6&algorithm=SHA1",
		escape(issuer), escape(account), secretB32, escape(issuer), period))
}

func escape(s string) string {
	return strings.NewReplacer(":", "%3A", " ", "%20", "&", "%26", "?", "%3F", "#", "%23", "/", "%2F", "=", "%3D").Replace(s)
}

// QRDataURI renders the key as a PNG data: URI.
func QRDataURI(k *otp.Key) (string, error) {
	img, err := k.Image(240, 240)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", err
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// ValidSecret checks an operator-supplied base32 secret.
func ValidSecret(s string) error {
	s = strings.ToUpper(strings.TrimRight(strings.ReplaceAll(s, " ", ""), "="))
	b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s)
	if err != nil {
		return errors.New("TOTP secret must be base32")
	}
	if len(b) < 10 {
		return errors.New("TOTP secret must be at least 80 bits (16 base32 characters)")
	}
	return nil
}

// Normalize returns the canonical form of a base32 secret.
func Normalize(s string) string {
	return strings.ToUpper(strings.TrimRight(strings.ReplaceAll(s, " ", ""), "="))
}

// CheckTOTP returns the matched time step for a 6-digit code, or -1.
// Steps at or before lastStep are refused (no replay).
func CheckTOTP(secretB32, code string, now time.Time, lastStep int64) int64 {
	code = strings.TrimSpace(code)
	if len(code) != 6 {
		return -1
	}
	step := now.Unix() / period
	match := int64(-1)
	for d := int64(-skew); d <= skew; d++ {
		s := step + d
		want, err := totp.GenerateCodeCustom(secretB32, time.Unix(s*period, 0), opts)
		if err != nil {
			return -1
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && s > lastStep {
			match = s
		}
	}
	return match
}

// NewRecoveryCodes returns fresh recovery codes and their hashes.
func NewRecoveryCodes() (codes, hashes []string) {
	for range nRecover {
		b := make([]byte, 7)
		_, _ = rand.Read(b)
		c := strings.ToLower(base32.StdEncoding.EncodeToString(b)[:10]) // 50 bits
		c = c[:5] + "-" + c[5:]
		codes = append(codes, c)
		hashes = append(hashes, secret.SHA256(c))
	}
	return codes, hashes
}

// Verify checks a TOTP or recovery code against f. On success it returns
// the updated factor to store (last step advanced, or the recovery code
// consumed) and whether a recovery code was used.
func Verify(f *Factor, code string, now time.Time) (*Factor, bool, bool) {
	code = strings.ToLower(strings.TrimSpace(code))
	if len(code) > 32 {
		return nil, false, false
	}
	if s := CheckTOTP(f.Secret, code, now, f.LastStep); s >= 0 {
		n := *f
		n.LastStep = s
		return &n, false, true
	}
	h := secret.SHA256(code)
	for i, r := range f.Recovery {
		if subtle.ConstantTimeCompare([]byte(r), []byte(h)) == 1 {
			n := *f
			n.Recovery = append(append([]string(nil), f.Recovery[:i]...), f.Recovery[i+1:]...)
			return &n, true, true
		}
	}
	return nil, false, false
}

// VerifyUser checks code against the user's enrolled factor and, on
// success, stores the advanced factor in the same transaction — so a TOTP
// code or recovery code is accepted once, even across instances.
func (c *Codec) VerifyUser(ctx context.Context, st store.Store, userID, code string, now time.Time) (bool, error) {
	ok := false
	_, err := st.UpdateUser(ctx, userID, func(u *store.User) error {
		ok = false
		f, err := c.Open(u.ID, u.TOTPSecret)
		if err != nil || f == nil {
			return err
		}
		nf, _, good := Verify(f, code, now)
		if !good {
			return errNoChange
		}
		u.TOTPSecret = c.Seal(u.ID, nf)
		ok = true
		return nil
	})
	if errors.Is(err, errNoChange) {
		return false, nil
	}
	return ok, err
}

var errNoChange = errors.New("mfa: code not accepted")
