// Package keys owns the JOSE signing keys: it generates them on first start,
// stores them encrypted with the master key, signs ID and access tokens with
// the active key, verifies tokens with any published key, and serves the
// JWKS. Keys move next → active → retired (see rotate.go and `latchkey
// keys`); every instance reloads the set periodically, so rotation needs no
// restart.
package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
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

// ReloadInterval bounds how stale an instance's view of the key set may be
// (the default of Manager.ReloadEvery).
const ReloadInterval = 30 * time.Second

// MinReloadGap is the least time between two reload attempts of one
// Manager. A token naming a key id the Manager does not know triggers an
// immediate reload (another instance may have started signing with a key
// created after our last reload), but at most once per gap, so tokens with
// made-up key ids cannot turn into a database query each; a failing reload
// (database down) is likewise retried at most once per gap.
const MinReloadGap = time.Second

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
	// ReloadEvery is how often the key set is re-read from the store; 0
	// means ReloadInterval. Tests shorten it.
	ReloadEvery time.Duration
	// KidSeed (secret, the same on every instance: derived from the master
	// key) makes Init's first keys' kids deterministic; see Init. nil means
	// random kids.
	KidSeed []byte
	// TokenTTL is the longest lifetime of any token signed with these keys
	// (max of the access and ID token lifetimes). It decides how long a
	// retired key stays published (see Retention); 0 means a conservative
	// 24 hours.
	TokenTTL time.Duration

	mu        sync.RWMutex
	keys      []*signingKey // all non-deleted keys
	active    *signingKey   // the oldest active key of Alg
	loadedAt  time.Time
	attemptAt time.Time              // last reload attempt (successful or not)
	signers   map[string]jose.Signer // by kid + "/" + typ
	verified  verifiedCache          // verifycache.go
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
	return m.newRecord(alg, state, secret.Random(12))
}

func (m *Manager) newRecord(alg jose.SignatureAlgorithm, state, kid string) (*store.SigningKey, error) {
	priv, err := Generate(alg)
	if err != nil {
		return nil, err
	}
	return m.record(priv, alg, state, kid, m.Now().UTC().Truncate(time.Millisecond))
}

// record seals priv into a store record created at now.
func (m *Manager) record(priv crypto.Signer, alg jose.SignatureAlgorithm, state, kid string, now time.Time) (*store.SigningKey, error) {
	privJWK := jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(alg), Use: "sig"}
	privJSON, err := privJWK.MarshalJSON()
	if err != nil {
		return nil, err
	}
	pubJSON, err := privJWK.Public().MarshalJSON()
	if err != nil {
		return nil, err
	}
	rec := &store.SigningKey{ID: kid, Alg: string(alg), State: state, PrivateKey: m.Sealer.Seal(privJSON, []byte(kid)), PublicKey: pubJSON, CreatedAt: now}
	if state == store.KeyActive {
		rec.ActivatedAt = now
	}
	return rec, nil
}

// Init loads the key set, creating an active key for Alg if there is none
// (first start) and a next key if none is published, so that the next
// rotation promotes a key relying parties have already fetched.
//
// Several instances starting at once on an empty database must end up with
// one key set, or they would sign with different keys, each missing from
// the other's JWKS. With KidSeed set, the keys Init creates have
// deterministic kids, so only one insert of each succeeds and the others
// (store.ErrConflict) load the winner's. If such a kid is taken by a key of
// an earlier life (signing_alg switched back), a random kid is used.
func (m *Manager) Init(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		if err := m.Reload(ctx); err != nil {
			return err
		}
		m.mu.RLock()
		hasActive := m.active != nil
		hasNext := slices.ContainsFunc(m.keys, func(k *signingKey) bool {
			return k.rec.State == store.KeyNext && k.rec.Alg == string(m.Alg)
		})
		m.mu.RUnlock()
		if (hasActive && hasNext) || attempt == 2 {
			return nil
		}
		var states []string
		if !hasActive {
			states = append(states, store.KeyActive)
		}
		if !hasNext {
			states = append(states, store.KeyNext)
		}
		// Generating an RSA key takes a while: make both at once.
		privs := make([]crypto.Signer, len(states))
		errs := make([]error, len(states))
		var wg sync.WaitGroup
		for i := range states {
			wg.Go(func() { privs[i], errs[i] = Generate(m.Alg) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		now := m.Now().UTC().Truncate(time.Millisecond)
		for i, state := range states {
			kid := secret.Random(12)
			if attempt == 0 && len(m.KidSeed) > 0 {
				kid = bootstrapKid(m.KidSeed, state, m.Alg)
			}
			// Distinct times, so the active key is listed before the next one.
			created := now.Add(-time.Duration(len(states)-1-i) * time.Millisecond)
			rec, err := m.record(privs[i], m.Alg, state, kid, created)
			if err != nil {
				return err
			}
			if err := m.Store.CreateSigningKey(ctx, rec); err != nil && !errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("keys: store new %s key: %w", state, err)
			}
		}
	}
}

// bootstrapKid is the kid of the first key of a state and algorithm:
// unguessable across deployments, the same for every instance of one.
func bootstrapKid(seed []byte, state string, alg jose.SignatureAlgorithm) string {
	h := hmac.New(sha256.New, seed)
	h.Write([]byte("bootstrap/" + state + "/" + string(alg)))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:12])
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
	now := m.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys, m.active, m.loadedAt, m.attemptAt = ks, active, now, now
	m.signers = map[string]jose.Signer{}
	return nil
}

func (m *Manager) reloadEvery() time.Duration {
	if m.ReloadEvery > 0 {
		return m.ReloadEvery
	}
	return ReloadInterval
}

// maybeReload reloads when the set is older than the reload interval, or
// (force) when a token names an unknown key. Only one caller reloads, the
// others go on with the current set, and attempts are at least MinReloadGap
// apart. Errors keep the old set (a brief database outage must not stop
// signing).
func (m *Manager) maybeReload(ctx context.Context, force bool) {
	now := m.Now()
	m.mu.Lock()
	due := force || now.Sub(m.loadedAt) >= m.reloadEvery()
	if !due || (!m.attemptAt.IsZero() && now.Sub(m.attemptAt) < MinReloadGap) {
		m.mu.Unlock()
		return
	}
	m.attemptAt = now
	m.mu.Unlock()
	_ = m.Reload(ctx)
}

// Retention is how long a key stays published after it retired: every
// token it signed must have expired first. Instances that have not yet
// reloaded may sign with a retired key for up to one reload interval after
// it retired, and clocks differ a little, so that and a margin are added to
// the longest token lifetime.
func Retention(tokenTTL, reloadEvery time.Duration) time.Duration {
	if tokenTTL <= 0 {
		tokenTTL = 24 * time.Hour
	}
	if reloadEvery <= 0 {
		reloadEvery = ReloadInterval
	}
	return tokenTTL + reloadEvery + RetentionMargin
}

// RetentionMargin is the safety margin of Retention (clock skew between
// instances, a slow reload).
const RetentionMargin = 5 * time.Minute

// Published reports whether a key belongs in the JWKS at now: next and
// active keys always, retired keys until retention after they retired.
func Published(k *store.SigningKey, now time.Time, retention time.Duration) bool {
	if k.State != store.KeyRetired {
		return true
	}
	return now.Before(k.RetiredAt.Add(retention))
}

func (m *Manager) published(k *signingKey, now time.Time) bool {
	return Published(k.rec, now, Retention(m.TokenTTL, m.reloadEvery()))
}

// Sign serializes claims as a JWS with header typ (e.g. "JWT", "at+jwt").
func (m *Manager) Sign(ctx context.Context, typ string, claims any) (string, error) {
	m.maybeReload(ctx, false)
	m.mu.RLock()
	k := m.active
	s := m.signers[typ]
	m.mu.RUnlock()
	if k == nil {
		return "", errors.New("keys: no active signing key")
	}
	if tok, ok, err := compactSign(k, typ, claims); ok { // jws.go
		return tok, err
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

// JWKS returns the public keys of every published key: next keys (so that
// relying parties know a key before anything is signed with it), the
// active key, and retired keys until every token they signed has expired.
func (m *Manager) JWKS(ctx context.Context) jose.JSONWebKeySet {
	m.maybeReload(ctx, false)
	now := m.Now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range m.keys {
		if m.published(k, now) {
			set.Keys = append(set.Keys, k.pub)
		}
	}
	return set
}

// Verify checks a compact JWS signed by one of our keys, checks its typ
// header, and decodes its claims into out. It does not check time claims.
//
// A token verified in the last VerifiedTTL is not verified again
// (verifycache.go): its claims are decoded from the cache.
func (m *Manager) Verify(ctx context.Context, raw, typ string, out any) error {
	now := m.Now()
	if m.verified.get(raw, typ, now, out) {
		return nil
	}
	if err := m.verify(ctx, raw, typ, out); err != nil {
		return err
	}
	m.verified.put(raw, typ, now)
	return nil
}

func (m *Manager) verify(ctx context.Context, raw, typ string, out any) error {
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

// publicKey returns the published key kid. An unknown kid triggers a
// (rate-limited) reload first: another instance may already sign with a key
// created after our last reload.
func (m *Manager) publicKey(ctx context.Context, kid string) (jose.JSONWebKey, bool) {
	find := func() (jose.JSONWebKey, bool, bool) {
		now := m.Now()
		m.mu.RLock()
		defer m.mu.RUnlock()
		i := slices.IndexFunc(m.keys, func(k *signingKey) bool { return k.rec.ID == kid })
		if i < 0 {
			return jose.JSONWebKey{}, false, false
		}
		// A retired key past its retention signed only expired tokens.
		return m.keys[i].pub, m.published(m.keys[i], now), true
	}
	if k, ok, known := find(); ok || known {
		return k, ok
	}
	m.maybeReload(ctx, true)
	k, ok, _ := find()
	return k, ok
}

// MarshalJWKS renders the JWKS document.
func (m *Manager) MarshalJWKS(ctx context.Context) ([]byte, error) {
	return json.Marshal(m.JWKS(ctx))
}
