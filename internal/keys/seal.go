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
type Sealer struct{ aead cipher.AEAD }

// NewSealer returns a Sealer keyed for purpose.
func NewSealer(m MasterKey, purpose string) (*Sealer, error) {
	if len(m) != 32 {
		return nil, errors.New("keys: master key must be 32 bytes")
	}
	block, err := aes.NewCipher(m.Derive("seal/" + purpose))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext; ad binds it to its row (e.g. the key id).
func (s *Sealer) Seal(plaintext, ad []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	_, _ = rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plaintext, ad)
}

// Open decrypts a Seal result.
func (s *Sealer) Open(ciphertext, ad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(ciphertext) < n {
		return nil, errors.New("keys: sealed value too short")
	}
	pt, err := s.aead.Open(nil, ciphertext[:n], ciphertext[n:], ad)
	if err != nil {
		return nil, fmt.Errorf("keys: cannot decrypt (wrong master key?): %w", err)
	}
	return pt, nil
}
