package operator

import (
	"context"
	"errors"
	"fmt"

	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/mfa"
	"github.com/latchkey-dev/latchkey/internal/store"
)

// RotateMasterResult counts what RotateMaster looked at and changed.
type RotateMasterResult struct {
	Keys, KeysResealed       int
	Factors, FactorsResealed int
}

var errAlreadySealed = errors.New("already sealed under the new master key")

// RotateMaster re-seals every signing key and every user's second factor
// under newKey, reading them with newKey or any of readWith. Rows already
// under newKey are left alone, so it is idempotent and resumable. A value
// no key opens stops it with an error (nothing is lost: that row is
// untouched).
func RotateMaster(ctx context.Context, st store.Store, newKey keys.MasterKey, readWith []keys.MasterKey) (RotateMasterResult, error) {
	var res RotateMasterResult
	reseal := func(purpose string) (func(sealed, ad []byte) ([]byte, error), error) {
		s, err := keys.NewSealer(newKey, purpose, readWith...)
		if err != nil {
			return nil, err
		}
		return func(sealed, ad []byte) ([]byte, error) {
			pt, current, err := s.OpenCurrent(sealed, ad)
			if err != nil {
				return nil, err
			}
			if current {
				return nil, errAlreadySealed
			}
			return s.Seal(pt, ad), nil
		}, nil
	}
	resealKey, err := reseal(keys.SealPurpose)
	if err != nil {
		return res, err
	}
	resealFactor, err := reseal(mfa.SealPurpose)
	if err != nil {
		return res, err
	}
	recs, err := st.ListSigningKeys(ctx)
	if err != nil {
		return res, err
	}
	for _, r := range recs {
		res.Keys++
		_, err := st.UpdateSigningKey(ctx, r.ID, func(k *store.SigningKey) error {
			sealed, err := resealKey(k.PrivateKey, []byte(k.ID))
			if err != nil {
				return err
			}
			k.PrivateKey = sealed
			return nil
		})
		switch {
		case errors.Is(err, errAlreadySealed):
		case err != nil:
			return res, fmt.Errorf("signing key %s: %w", r.ID, err)
		default:
			res.KeysResealed++
		}
	}
	users, err := st.ListUsers(ctx)
	if err != nil {
		return res, err
	}
	for _, u := range users {
		if u.TOTPSecret == nil {
			continue
		}
		res.Factors++
		_, err := st.UpdateUser(ctx, u.ID, func(u *store.User) error {
			if u.TOTPSecret == nil { // removed meanwhile
				return errAlreadySealed
			}
			sealed, err := resealFactor(u.TOTPSecret, []byte(u.ID))
			if err != nil {
				return err
			}
			u.TOTPSecret = sealed
			return nil
		})
		switch {
		case errors.Is(err, errAlreadySealed):
		case err != nil:
			return res, fmt.Errorf("second factor of user %s: %w", u.Username, err)
		default:
			res.FactorsResealed++
		}
	}
	return res, nil
}
