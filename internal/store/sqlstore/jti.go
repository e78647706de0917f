package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
)

// UseJTI records key until expiresAt with one upsert: a new key is
// inserted; a key whose earlier record expired at now is taken over (the
// conditional DO UPDATE); a live one changes no row, which is the replay.
// Of concurrent callers with one key, in any number of processes, exactly
// one changes the row.
func (s *Store) UseJTI(ctx context.Context, key string, expiresAt, now time.Time) error {
	if now.IsZero() || !expiresAt.After(now) {
		return errors.New("sqlstore: use jti: expiry must be after now")
	}
	res, err := s.exec(ctx, `INSERT INTO used_jtis (jti_key, expires_at) VALUES (?, ?)
		ON CONFLICT (jti_key) DO UPDATE SET expires_at = excluded.expires_at
		WHERE used_jtis.expires_at <= ?`, key, ms(expiresAt), ms(now))
	if err != nil {
		return s.wrap(err, "use jti")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.wrap(err, "use jti")
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: use jti: %w", store.ErrAlreadyUsed)
	}
	return nil
}
