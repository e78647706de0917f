// Package keys owns the JOSE signing keys: it generates them on first start,
// stores them encrypted with the master key, signs ID and access tokens with
// the active key, verifies tokens with any published key, and serves the
// JWKS. Keys move next → active → retired (see `latchkey keys`); every
// instance reloads the set periodically, so rotation needs no restart.
package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/latchkey-dev/latchkey/internal/secret"
	"github.com/latchkey-dev/latchkey/internal/store"
)

// Algorithms we can sign with.
var Algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// ReloadInterval bounds how stale an instance's view of the key set may be.
const ReloadInterval = 30 * time.Second

type signingKey struct {
	rec    *store.SigningKey
	signer crypto.Signer
	pub    jose.JSONWebKey
}

// Manager holds the current key set.
type Manager struct {
	Store  store.Store
	Sealer *Sealer
	Alg    jose.SignatureAlgorithm
	Now    func() time.Time

	mu       sync.RWMutex
	keys     []*signingKey // all non-deleted keys
	active   *signingKey   // the oldest active key of Alg
	loadedAt time.Time
	signers  map[string]jose.Signer // by kid + "/" + typ
}

// Generate creates a private key for alg.
func Generate(alg jose.SignatureAlgorithm) (crypto.Signer, error) {
	switch alg {
	case jose.RS256:
		return rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("keys: unsupported algorithm %s", alg)
}

// NewRecord generates a key and returns its store record in state.
func (m *Manager) NewRecord(alg jose.SignatureAlgorithm, state string) (*store.SigningKey, error) {
	priv, err := Generate(alg)
	if err != nil {
		return nil, err
	}
	kid := secret.Random(12)
	privJWK := jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(alg), Use: "sig"}
	privJSON, err := privJWK.MarshalJSON()
	if err != nil {
		return nil, err
	}
	pubJSON, err := privJWK.Public().MarshalJSON()
	if err != nil {
		return nil, err
	}
	now := m.Now().UTC().Truncate(time.Millisecond)
	rec := &store.SigningKey{ID: kid, Alg: string(alg), State: state, PrivateKey: m.Sealer.Seal(privJSON, []byte(kid)), PublicKey: pubJSON, CreatedAt: now}
	if state == store.KeyActive {
		rec.ActivatedAt = now
	}
	return rec, nil
}

// Init loads the key set, creating an active key for Alg if there is none.
func (m *Manager) Init(ctx context.Context) error {
	if err := m.Reload(ctx); err != nil {
		return err
	}
	m.mu.RLock()
	ok := m.active != nil
	m.mu.RUnlock()
	if ok {
		return nil
	}
	rec, err := m.NewRecord(m.Alg, store.KeyActive)
	if err != nil {
		return err
	}
	if err := m.Store.CreateSigningKey(ctx, rec); err != nil {
		return fmt.Errorf("keys: store new key: %w", err)
	}
	// If another instance created one at the same moment, Reload picks the
	// oldest active key on every instance, so they all agree.
	return m.Reload(ctx)
}

// Reload reads the key set from the store.
func (m *Manager) Reload(ctx context.Context) error {
	recs, err := m.Store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("keys: list: %w", err)
	}
	var ks []*signingKey
	var active *signingKey
	for _, r := range recs {
		raw, err := m.Sealer.Open(r.PrivateKey, []byte(r.ID))
		if err != nil {
			return fmt.Errorf("keys: key %s: %w", r.ID, err)
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			return fmt.Errorf("keys: key %s: %w", r.ID, err)
		}
		signer, ok := jwk.Key.(crypto.Signer)
		if !ok {
			return fmt.Errorf("keys: key %s is not a signing key", r.ID)
		}
		k := &signingKey{rec: r, signer: signer, pub: jwk.Public()}
		ks = append(ks, k)
		if r.State == store.KeyActive && r.Alg == string(m.Alg) {
			if active == nil || r.ActivatedAt.Before(active.rec.ActivatedAt) ||
				(r.ActivatedAt.Equal(active.rec.ActivatedAt) && r.ID < active.rec.ID) {
				active = k
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys, m.active, m.loadedAt = ks, active, m.Now()
	m.signers = map[string]jose.Signer{}
	return nil
}

// maybeReload reloads when the set is older than ReloadInterval. Errors keep
// the old set (a brief database outage must not stop signing).
func (m *Manager) maybeReload(ctx context.Context) {
	m.mu.RLock()
	stale := m.Now().Sub(m.loadedAt) > ReloadInterval
	m.mu.RUnlock()
	if stale {
		_ = m.Reload(ctx)
	}
}

// Sign serializes claims as a JWS with header typ (e.g. "JWT", "at+jwt").
func (m *Manager) Sign(ctx context.Context, typ string, claims any) (string, error) {
	m.maybeReload(ctx)
	m.mu.RLock()
	k := m.active
	s := m.signers[typ]
	m.mu.RUnlock()
	if k == nil {
		return "", errors.New("keys: no active signing key")
	}
	if s == nil {
		var err error
		s, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.rec.Alg), Key: jose.JSONWebKey{Key: k.signer, KeyID: k.rec.ID}},
			(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
		if err != nil {
			return "", err
		}
		m.mu.Lock()
		if m.active == k {
			m.signers[typ] = s
		}
		m.mu.Unlock()
	}
	return jwt.Signed(s).Claims(claims).Serialize()
}

// ActiveAlg returns the algorithm of the active key.
func (m *Manager) ActiveAlg() string { return string(m.Alg) }

// JWKS returns the public keys of every published key (next, active, retired).
func (m *Manager) JWKS(ctx context.Context) jose.JSONWebKeySet {
	m.maybeReload(ctx)
	m.mu.RLock()
	defer m.mu.RUnlock()
	var set jose.JSONWebKeySet
	for _, k := range m.keys {
		set.Keys = append(set.Keys, k.pub)
	}
	return set
}

// Verify checks a compact JWS signed by one of our keys, checks its typ
// header, and decodes its claims into out. It does not check time claims.
func (m *Manager) Verify(ctx context.Context, raw, typ string, out any) error {
	tok, err := jwt.ParseSigned(raw, Algorithms)
	if err != nil {
		return err
	}
	if len(tok.Headers) != 1 {
		return errors.New("keys: expected one signature")
	}
	h := tok.Headers[0]
	if t, _ := h.ExtraHeaders[jose.HeaderType].(string); t != typ {
		return fmt.Errorf("keys: typ %q, want %q", t, typ)
	}
	pub, ok := m.publicKey(ctx, h.KeyID)
	if !ok {
		return errors.New("keys: unknown key id")
	}
	if pub.Algorithm != h.Algorithm {
		return errors.New("keys: algorithm does not match key")
	}
	return tok.Claims(pub.Key, out)
}

func (m *Manager) publicKey(ctx context.Context, kid string) (jose.JSONWebKey, bool) {
	find := func() (jose.JSONWebKey, bool) {
		m.mu.RLock()
		defer m.mu.RUnlock()
		i := slices.IndexFunc(m.keys, func(k *signingKey) bool { return k.rec.ID == kid })
		if i < 0 {
			return jose.JSONWebKey{}, false
		}
		return m.keys[i].pub, true
	}
	if k, ok := find(); ok {
		return k, true
	}
	m.maybeReload(ctx)
	return find()
}

// MarshalJWKS renders the JWKS document.
func (m *Manager) MarshalJWKS(ctx context.Context) ([]byte, error) {
	return json.Marshal(m.JWKS(ctx))
}
