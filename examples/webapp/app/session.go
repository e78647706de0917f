package app

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Session is what the app keeps on its backend for one signed-in browser.
// The browser holds only a random session id (in an HttpOnly cookie); the
// store is keyed by a hash of that id, so a copy of the store does not hold
// usable cookies either. The tokens are sealed with AES-256-GCM.
type Session struct {
	Subject   string // the user's "sub" at Latchkey
	Name      string // for display, from the ID token
	CreatedAt time.Time
	ExpiresAt time.Time // the app session's own end (the cookie's Max-Age)

	// AccessToken and RefreshToken are sealed (see sealer): never stored
	// in the clear, never sent to the browser.
	AccessToken  []byte
	RefreshToken []byte
	// AccessExpiry is when the access token expires, by the app's clock.
	AccessExpiry time.Time
	// Refreshes counts the refresh grants this session made (for display).
	Refreshes int
	// LastRefresh is when the last refresh happened (zero: never).
	LastRefresh time.Time
}

// ErrNoSession means the store has no session under a key.
var ErrNoSession = errors.New("app: no such session")

// Store keeps sessions on the app's backend. MemoryStore is the example's
// implementation; a real deployment would use its database or Redis, so
// sessions survive restarts and are shared by every instance of the app.
// Every method must be safe for concurrent use.
type Store interface {
	// Create stores a new session under key.
	Create(ctx context.Context, key string, s *Session) error
	// Get returns a copy of the session under key, or ErrNoSession.
	Get(ctx context.Context, key string) (*Session, error)
	// Replace overwrites an existing session, or returns ErrNoSession if it
	// was deleted meanwhile (a sign-out must not be undone by a refresh
	// that finished after it).
	Replace(ctx context.Context, key string, s *Session) error
	// Delete removes the session under key; deleting a missing one is no error.
	Delete(ctx context.Context, key string) error
}

// MemoryStore is a Store in process memory: fine for an example, lost on
// restart, and not shared between instances.
type MemoryStore struct {
	mu sync.Mutex
	m  map[string]Session
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{m: map[string]Session{}} }

func (s *MemoryStore) Create(_ context.Context, key string, v *Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = *v
	return nil
}

func (s *MemoryStore) Get(_ context.Context, key string) (*Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return nil, ErrNoSession
	}
	return &v, nil
}

func (s *MemoryStore) Replace(_ context.Context, key string, v *Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; !ok {
		return ErrNoSession
	}
	s.m[key] = *v
	return nil
}

func (s *MemoryStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

// newID returns a random 256-bit identifier for cookies.
func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// storeKey is the key a cookie's id is stored under: its SHA-256.
func storeKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// sealer encrypts tokens at rest with AES-256-GCM. The additional data names
// the session and the kind of token, so a sealed refresh token cannot be
// moved to another session (or passed off as an access token) by someone
// who can write to the store but does not have the key.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("the session key must be 32 bytes (AES-256), got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(key, kind, plaintext string) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	_, _ = rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, []byte(plaintext), []byte(kind+"\x00"+key))
}

func (s *sealer) open(key, kind string, sealed []byte) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return "", errors.New("app: sealed token too short")
	}
	b, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(kind+"\x00"+key))
	if err != nil {
		return "", errors.New("app: sealed token does not open with this key")
	}
	return string(b), nil
}
