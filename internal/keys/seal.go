package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// MasterKey is the 32-byte root secret from configuration. It never signs or
// encrypts anything itself: Derive gives each purpose its own subkey.
type MasterKey []byte

// Derive returns a 32-byte subkey for purpose (HKDF-SHA256, RFC 5869).
func (m MasterKey) Derive(purpose string) []byte {
	k, err := hkdf.Key(sha256.New, m, nil, "latchkey/"+purpose, 32)
	if err != nil {
		panic(err) // only on invalid lengths, which are constants here
	}
	return k
}

// Sealer encrypts small values at rest with AES-256-GCM.
type Sealer struct {
	aead cipher.AEAD
	// old open values sealed under previous master keys (during a master
	// key rotation, see `latchkey keys rotate-master`); never used to seal.
	old []cipher.AEAD
}

// NewSealer returns a Sealer keyed for purpose. It seals with m and opens
// values sealed under m or any of old.
func NewSealer(m MasterKey, purpose string, old ...MasterKey) (*Sealer, error) {
	aead, err := newAEAD(m, purpose)
	if err != nil {
		return nil, err
	}
	s := &Sealer{aead: aead}
	for _, o := range old {
		a, err := newAEAD(o, purpose)
		if err != nil {
			return nil, fmt.Errorf("old master key: %w", err)
		}
		s.old = append(s.old, a)
	}
	return s, nil
}

func newAEAD(m MasterKey, purpose string) (cipher.AEAD, error) {
	if len(m) != 32 {
		return nil, errors.New("keys: master key must be 32 bytes")
	}
	block, err := aes.NewCipher(m.Derive("seal/" + purpose))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Seal encrypts plaintext; ad binds it to its row (e.g. the key id).
func (s *Sealer) Seal(plaintext, ad []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	_, _ = rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plaintext, ad)
}

// Open decrypts a Seal result, sealed under the current master key or an
// old one.
func (s *Sealer) Open(ciphertext, ad []byte) ([]byte, error) {
	pt, _, err := s.OpenCurrent(ciphertext, ad)
	return pt, err
}

// OpenCurrent is Open that also reports whether the value was sealed under
// the current master key (false: under an old one, so it should be
// re-sealed).
func (s *Sealer) OpenCurrent(ciphertext, ad []byte) (plaintext []byte, current bool, err error) {
	n := s.aead.NonceSize()
	if len(ciphertext) < n {
		return nil, false, errors.New("keys: sealed value too short")
	}
	pt, err := s.aead.Open(nil, ciphertext[:n], ciphertext[n:], ad)
	if err == nil {
		return pt, true, nil
	}
	for _, a := range s.old {
		if pt, e := a.Open(nil, ciphertext[:n], ciphertext[n:], ad); e == nil {
			return pt, false, nil
		}
	}
	return nil, false, fmt.Errorf("keys: cannot decrypt (wrong master key?): %w", err)
}
