package keys

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
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
	Activated string   `json:"activated"`         // next → active
	Retired   []string `json:"retired"`           // active → retired
	Created   string   `json:"created,omitempty"` // new next key; "" when another next key remains
}

// Rotate moves the key set one step: the oldest next key of m.Alg becomes
// active, every previously active key is retired (RetiredAt = now; it stays
// published for Retention), and a fresh next key is created unless another
// one remains. So a key is always in the JWKS before any instance signs
// with it. Instances pick the change up at their next reload.
//
// The steps are ordered so that an interruption leaves a working set: the
// new next key is created first; while the promoted key and the old one are
// both active, instances keep signing with the older one (Reload picks the
// oldest active key); re-running Rotate finishes the job.
//
// The next key must have been published for minNextAge (normally
// MinNextAge; 0 forces). If there is none, or it is too young, Rotate
// changes nothing but (when there is no next key at all) creating one, and
// returns ErrNotReady. m needs Store, Sealer, Alg and Now; it need not be
// initialised. Every stored private key must open with m.Sealer, so a
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
	var next, active []*store.SigningKey
	for _, r := range recs {
		switch {
		case r.State == store.KeyNext && r.Alg == string(m.Alg):
			next = append(next, r)
		case r.State == store.KeyActive:
			active = append(active, r)
		}
	}
	slices.SortFunc(next, func(a, b *store.SigningKey) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	res := &RotateResult{Retired: []string{}}
	if len(next) == 0 {
		rec, err := m.createNext(ctx, m.Alg)
		if err != nil {
			return nil, err
		}
		res.Created = rec.ID
		return res, fmt.Errorf("%w: there was none, so %s was created and published; rotate again in %s",
			ErrNotReady, rec.ID, MinNextAge)
	}
	promote := next[0]
	if age := now.Sub(promote.CreatedAt); minNextAge > 0 && age < minNextAge {
		return res, fmt.Errorf("%w: next key %s was published %s ago; rotate again in %s (or force it)",
			ErrNotReady, promote.ID, age.Truncate(time.Second), (minNextAge - age).Round(time.Second))
	}
	if len(next) == 1 {
		rec, err := m.createNext(ctx, m.Alg)
		if err != nil {
			return nil, err
		}
		res.Created = rec.ID
	}
	_, err = m.Store.UpdateSigningKey(ctx, promote.ID, func(k *store.SigningKey) error {
		if k.State != store.KeyNext {
			return fmt.Errorf("keys: key %s is %s now, not next (a concurrent rotation?)", k.ID, k.State)
		}
		k.State, k.ActivatedAt = store.KeyActive, now
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("keys: activate %s: %w", promote.ID, err)
	}
	res.Activated = promote.ID
	for _, a := range active {
		_, err := m.Store.UpdateSigningKey(ctx, a.ID, func(k *store.SigningKey) error {
			if k.State == store.KeyActive {
				k.State, k.RetiredAt = store.KeyRetired, now
			}
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("keys: retire %s: %w", a.ID, err)
		}
		res.Retired = append(res.Retired, a.ID)
	}
	return res, nil
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
