package keys

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey-dev/latchkey/internal/store"
)

// SealPurpose is the Sealer purpose of the signing keys' private parts.
const SealPurpose = "signing-keys"

// MinNextAge is how long a next key must have been published before Rotate
// makes it active without force: every instance has reloaded it (one
// ReloadInterval) and relying parties caching the JWKS (the /jwks response
// allows 60 s) have seen it, so tokens signed with it verify everywhere.
const MinNextAge = ReloadInterval + 60*time.Second

// ErrNotReady means Rotate refused because no next key has been published
// long enough (see MinNextAge). Rotate may have created one; run it again
// later.
var ErrNotReady = errors.New("keys: no next key has been published long enough")

// RotateResult says what Rotate changed.
type RotateResult struct {
	// Activated and Created are the default algorithm's (Alg, the one that
	// signs access tokens): the key that became active and the new next key
	// ("" when another next key remains). Retired lists every key retired,
	// of any algorithm. Algorithms has the details per algorithm.
	Activated  string        `json:"activated"`
	Retired    []string      `json:"retired"`
	Created    string        `json:"created,omitempty"`
	Algorithms []AlgRotation `json:"algorithms"`
}

// AlgRotation is what Rotate changed among the keys of one algorithm.
type AlgRotation struct {
	Alg       string   `json:"alg"`
	Activated string   `json:"activated,omitempty"` // next → active; "" for an algorithm no longer in the set
	Retired   []string `json:"retired"`             // active → retired (and next keys of an algorithm no longer in the set)
	Created   string   `json:"created,omitempty"`   // new next key; "" when another next key remains
}

// Rotate moves the key set one step, for every algorithm of the set at
// once: the oldest next key of each algorithm becomes active, every key
// that was active before is retired (RetiredAt = now; it stays published
// for Retention), and a fresh next key is created for each algorithm that
// has no other one left. So a key is always in the JWKS before any
// instance signs with it. Instances pick the change up at their next
// reload.
//
// The keys of algorithms outside the set (signing_alg or id_token_algs
// changed) are retired, active and next ones: they keep verifying what
// they signed until their retention ends, and then leave the JWKS.
//
// The steps are ordered so that an interruption leaves a working set: the
// new next keys are created first; while a promoted key and the old one
// are both active, instances keep signing with the older one (Reload picks
// the oldest active key); re-running Rotate finishes the job.
//
// Every algorithm's next key must have been published for minNextAge
// (normally MinNextAge; 0 forces). If one has none, or a too young one,
// Rotate changes nothing but creating the missing next keys, and returns
// ErrNotReady. m needs Store, Sealer, Alg (and Algs) and Now; it need not
// be initialised. Every stored private key must open with m.Sealer, so a
// wrong master key fails before anything changes.
func (m *Manager) Rotate(ctx context.Context, minNextAge time.Duration) (*RotateResult, error) {
	recs, err := m.Store.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: list: %w", err)
	}
	for _, r := range recs {
		if _, err := m.Sealer.Open(r.PrivateKey, []byte(r.ID)); err != nil {
			return nil, fmt.Errorf("keys: key %s: %w", r.ID, err)
		}
	}
	now := m.Now().UTC().Truncate(time.Millisecond)
	algs := m.algorithms()
	ch := &rotation{def: m.Alg}
	promote := map[jose.SignatureAlgorithm]*store.SigningKey{}
	lastNext := map[jose.SignatureAlgorithm]bool{} // the promoted key is its algorithm's only next key
	var waits []string
	var wait time.Duration
	for _, alg := range algs {
		var next []*store.SigningKey
		for _, r := range recs {
			if r.State == store.KeyNext && r.Alg == string(alg) {
				next = append(next, r)
			}
		}
		slices.SortFunc(next, func(a, b *store.SigningKey) int {
			return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
		})
		if len(next) == 0 {
			rec, err := m.createNext(ctx, alg)
			if err != nil {
				return ch.result(), err
			}
			ch.of(alg).Created = rec.ID
			waits = append(waits, fmt.Sprintf("there was no next %s key, so %s was created and published", alg, rec.ID))
			wait = MinNextAge
			continue
		}
		if age := now.Sub(next[0].CreatedAt); minNextAge > 0 && age < minNextAge {
			waits = append(waits, fmt.Sprintf("next %s key %s was published %s ago", alg, next[0].ID, age.Truncate(time.Second)))
			wait = max(wait, minNextAge-age)
			continue
		}
		promote[alg], lastNext[alg] = next[0], len(next) == 1
	}
	if len(waits) > 0 {
		return ch.result(), fmt.Errorf("%w: %s; rotate again in %s (or force it)",
			ErrNotReady, strings.Join(waits, ", "), wait.Round(time.Second))
	}
	// 1. A new next key for every algorithm about to promote its last one.
	for _, alg := range algs {
		ch.of(alg) // list every algorithm of the set, in order
		if lastNext[alg] {
			rec, err := m.createNext(ctx, alg)
			if err != nil {
				return ch.result(), err
			}
			ch.of(alg).Created = rec.ID
		}
	}
	// 2. Promote.
	for _, alg := range algs {
		p := promote[alg]
		_, err = m.Store.UpdateSigningKey(ctx, p.ID, func(k *store.SigningKey) error {
			if k.State != store.KeyNext {
				return fmt.Errorf("keys: key %s is %s now, not next (a concurrent rotation?)", k.ID, k.State)
			}
			k.State, k.ActivatedAt = store.KeyActive, now
			return nil
		})
		if err != nil {
			return ch.result(), fmt.Errorf("keys: activate %s: %w", p.ID, err)
		}
		ch.of(alg).Activated = p.ID
	}
	// 3. Retire the keys that were active, and the next keys of algorithms
	// no longer in the set (they never signed anything).
	for _, r := range recs {
		alg := jose.SignatureAlgorithm(r.Alg)
		inSet := slices.Contains(algs, alg)
		if r.State != store.KeyActive && (inSet || r.State != store.KeyNext) {
			continue
		}
		_, err := m.Store.UpdateSigningKey(ctx, r.ID, func(k *store.SigningKey) error {
			if k.State == store.KeyActive || (!inSet && k.State == store.KeyNext) {
				k.State, k.RetiredAt = store.KeyRetired, now
			}
			return nil
		})
		if err != nil {
			return ch.result(), fmt.Errorf("keys: retire %s: %w", r.ID, err)
		}
		ch.of(alg).Retired = append(ch.of(alg).Retired, r.ID)
	}
	return ch.result(), nil
}

// rotation collects Rotate's changes per algorithm, in the order the
// algorithms were first touched.
type rotation struct {
	def  jose.SignatureAlgorithm
	algs []*AlgRotation
}

func (r *rotation) of(alg jose.SignatureAlgorithm) *AlgRotation {
	for _, a := range r.algs {
		if a.Alg == string(alg) {
			return a
		}
	}
	a := &AlgRotation{Alg: string(alg), Retired: []string{}}
	r.algs = append(r.algs, a)
	return a
}

func (r *rotation) result() *RotateResult {
	res := &RotateResult{Retired: []string{}, Algorithms: []AlgRotation{}}
	for _, a := range r.algs {
		res.Algorithms = append(res.Algorithms, *a)
		res.Retired = append(res.Retired, a.Retired...)
		if a.Alg == string(r.def) {
			res.Activated, res.Created = a.Activated, a.Created
		}
	}
	return res
}

func (m *Manager) createNext(ctx context.Context, alg jose.SignatureAlgorithm) (*store.SigningKey, error) {
	rec, err := m.NewRecord(alg, store.KeyNext)
	if err != nil {
		return nil, err
	}
	if err := m.Store.CreateSigningKey(ctx, rec); err != nil {
		return nil, fmt.Errorf("keys: store new next key: %w", err)
	}
	return rec, nil
}

// KeyInfo describes a signing key for operators (`latchkey keys list`).
// It never contains key material.
type KeyInfo struct {
	ID          string    `json:"kid"`
	Alg         string    `json:"alg"`
	State       string    `json:"state"`
	CreatedAt   time.Time `json:"created_at"`
	ActivatedAt time.Time `json:"activated_at,omitzero"`
	RetiredAt   time.Time `json:"retired_at,omitzero"`
	// Published: the key is in the JWKS. PublishedUntil is when a retired
	// key leaves it.
	Published      bool      `json:"published"`
	PublishedUntil time.Time `json:"published_until,omitzero"`
}

// Describe lists recs for operators, oldest first, with whether each is
// published at now given the retention (see Retention).
func Describe(recs []*store.SigningKey, now time.Time, retention time.Duration) []KeyInfo {
	out := make([]KeyInfo, 0, len(recs))
	for _, r := range recs {
		k := KeyInfo{ID: r.ID, Alg: r.Alg, State: r.State, CreatedAt: r.CreatedAt,
			ActivatedAt: r.ActivatedAt, RetiredAt: r.RetiredAt, Published: Published(r, now, retention)}
		if r.State == store.KeyRetired {
			k.PublishedUntil = r.RetiredAt.Add(retention)
		}
		out = append(out, k)
	}
	return out
}
