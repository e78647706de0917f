// Package keys owns the JOSE signing keys: it generates them on first start,
// stores them encrypted with the master key, signs ID and access tokens with
// the active key of the token's algorithm (one key set per configured
// algorithm), verifies tokens with any published key, and serves the JWKS.
// Keys move next → active → retired (see rotate.go and `latchkey keys`);
// every instance reloads the set periodically, so rotation needs no
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

// Algorithms we can sign with. Their order is the order of Manager's
// per-algorithm arrays (see algIndex).
var Algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// numAlgs is len(Algorithms).
const numAlgs = 3

// algIndex is alg's position in Algorithms, or -1.
func algIndex(alg jose.SignatureAlgorithm) int {
	switch alg {
	case jose.RS256:
		return 0
	case jose.ES256:
		return 1
	case jose.EdDSA:
		return 2
	}
	return -1
}

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
	// headers caches the base64url-encoded JWS header per typ
	// (compactSign): it is the same for every token of the key.
	headers sync.Map // typ → string
}

// signerKey names a cached go-jose signer: one per key and typ.
type signerKey struct{ kid, typ string }

// Manager holds the current key set. It keeps one key set (next, active,
// retired keys) per algorithm of Algs: Alg signs access tokens and, by
// default, ID tokens; the others sign the ID tokens of clients that ask for
// them.
type Manager struct {
	Store  store.Store
	Sealer *Sealer
	// Alg is the default algorithm (signing_alg): Sign(ctx, "", …) uses it.
	Alg jose.SignatureAlgorithm
	// Algs are further algorithms to keep keys for (Init creates them,
	// Rotate rotates them, Sign signs with them); Alg is always included.
	// The server passes config.KeyAlgorithms: RS256 and id_token_algs.
	Algs []jose.SignatureAlgorithm
	Now  func() time.Time
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

	mu   sync.RWMutex
	keys []*signingKey // all non-deleted keys
	// active is, per algorithm of the set (by algIndex), its oldest active
	// key; nil for algorithms outside the set or without an active key.
	active    [numAlgs]*signingKey
	loadedAt  time.Time
	attemptAt time.Time // last reload attempt (successful or not)
	signers   map[signerKey]jose.Signer
	verified  verifiedCache // verifycache.go
}

// algorithms returns the key set's algorithms, Alg and Algs, each once, in
// the order of Algorithms. Unsupported algorithms are kept (Generate then
// reports them).
func (m *Manager) algorithms() []jose.SignatureAlgorithm {
	var out []jose.SignatureAlgorithm
	for _, a := range Algorithms {
		if a == m.Alg || slices.Contains(m.Algs, a) {
			out = append(out, a)
		}
	}
	for _, a := range append([]jose.SignatureAlgorithm{m.Alg}, m.Algs...) {
		if algIndex(a) < 0 && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// Algorithms returns the names of the algorithms the manager keeps keys
// for and signs with (discovery's id_token_signing_alg_values_supported).
func (m *Manager) Algorithms() []string {
	var out []string
	for _, a := range m.algorithms() {
		out = append(out, string(a))
	}
	return out
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

// Init loads the key set, creating for each of its algorithms an active
// key if there is none (first start, or an algorithm newly configured) and
// a next key if none is published, so that the next rotation promotes a
// key relying parties have already fetched.
//
// Several instances starting at once on an empty database must end up with
// one key set per algorithm, or they would sign with different keys, each
// missing from the other's JWKS. With KidSeed set, the keys Init creates
// have deterministic kids (per state and algorithm), so only one insert of
// each succeeds and the others (store.ErrConflict) load the winner's. If
// such a kid is taken by a key of an earlier life (an algorithm dropped
// from the set and added back), a random kid is used.
func (m *Manager) Init(ctx context.Context) error {
	algs := m.algorithms()
	type missing struct {
		alg   jose.SignatureAlgorithm
		state string
	}
	for attempt := 0; ; attempt++ {
		if err := m.Reload(ctx); err != nil {
			return err
		}
		var actives, nexts []missing
		m.mu.RLock()
		for _, alg := range algs {
			if i := algIndex(alg); i < 0 || m.active[i] == nil {
				actives = append(actives, missing{alg, store.KeyActive})
			}
			if !slices.ContainsFunc(m.keys, func(k *signingKey) bool {
				return k.rec.State == store.KeyNext && k.rec.Alg == string(alg)
			}) {
				nexts = append(nexts, missing{alg, store.KeyNext})
			}
		}
		m.mu.RUnlock()
		// Active keys first, so that they are listed before next keys.
		todo := append(actives, nexts...)
		if len(todo) == 0 || attempt == 2 {
			return nil
		}
		// Generating an RSA key takes a while: make them all at once.
		privs := make([]crypto.Signer, len(todo))
		errs := make([]error, len(todo))
		var wg sync.WaitGroup
		for i, t := range todo {
			wg.Go(func() { privs[i], errs[i] = Generate(t.alg) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		now := m.Now().UTC().Truncate(time.Millisecond)
		for i, t := range todo {
			kid := secret.Random(12)
			if attempt == 0 && len(m.KidSeed) > 0 {
				kid = bootstrapKid(m.KidSeed, t.state, t.alg)
			}
			// Distinct times, so the list keeps this order.
			created := now.Add(-time.Duration(len(todo)-1-i) * time.Millisecond)
			rec, err := m.record(privs[i], t.alg, t.state, kid, created)
			if err != nil {
				return err
			}
			if err := m.Store.CreateSigningKey(ctx, rec); err != nil && !errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("keys: store new %s %s key: %w", t.alg, t.state, err)
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
	algs := m.algorithms()
	var ks []*signingKey
	var active [numAlgs]*signingKey
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
		// Only algorithms of the set sign. An active key of another one
		// (signing_alg changed) stays published, and verifies, until a
		// rotation retires it and its retention ends.
		alg := jose.SignatureAlgorithm(r.Alg)
		if i := algIndex(alg); r.State == store.KeyActive && i >= 0 && slices.Contains(algs, alg) {
			if a := active[i]; a == nil || r.ActivatedAt.Before(a.rec.ActivatedAt) ||
				(r.ActivatedAt.Equal(a.rec.ActivatedAt) && r.ID < a.rec.ID) {
				active[i] = k
			}
		}
	}
	now := m.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys, m.active, m.loadedAt, m.attemptAt = ks, active, now, now
	m.signers = map[signerKey]jose.Signer{}
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

// Sign serializes claims as a JWS with header typ (e.g. "JWT", "at+jwt"),
// signed with the active key of alg ("" means Alg). alg must be one of the
// manager's algorithms.
func (m *Manager) Sign(ctx context.Context, alg jose.SignatureAlgorithm, typ string, claims any) (string, error) {
	if alg == "" {
		alg = m.Alg
	}
	i := algIndex(alg)
	if i < 0 {
		return "", fmt.Errorf("keys: unsupported algorithm %q", alg)
	}
	m.maybeReload(ctx, false)
	m.mu.RLock()
	k := m.active[i]
	var s jose.Signer
	if k != nil {
		s = m.signers[signerKey{k.rec.ID, typ}]
	}
	m.mu.RUnlock()
	if k == nil {
		return "", fmt.Errorf("keys: no active %s signing key", alg)
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
		if m.active[i] == k {
			m.signers[signerKey{k.rec.ID, typ}] = s
		}
		m.mu.Unlock()
	}
	return jwt.Signed(s).Claims(claims).Serialize()
}

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
