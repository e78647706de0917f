package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
)

// ListAuditAfter returns up to limit events with an id above afterID, in
// id order.
func (s *Store) ListAuditAfter(ctx context.Context, afterID int64, limit int) ([]*store.AuditEvent, error) {
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT id, at, event_type, user_id, client_id, family_id, reason, detail
		FROM audit_events WHERE id > ? ORDER BY id LIMIT ?`), afterID, limit)
	if err != nil {
		return nil, s.wrap(err, "list audit after %d", afterID)
	}
	out, err := collect(rows, func(sc scanner) (*store.AuditEvent, error) {
		var (
			e  store.AuditEvent
			at int64
		)
		if err := sc.Scan(&e.ID, &at, &e.Type, &e.UserID, &e.ClientID, &e.FamilyID, &e.Reason, &e.Detail); err != nil {
			return nil, err
		}
		e.Time = fromMS(at)
		return &e, nil
	})
	return out, s.wrap(err, "list audit after %d", afterID)
}

// ClaimCursor creates the cursor if needed and takes or renews its lease in
// one transaction. The lease UPDATE only matches when owner holds the lease
// or it has expired; PostgreSQL re-evaluates that condition after waiting
// for a concurrent claimer's row lock, and SQLite serialises writers, so of
// two instances claiming an expired lease exactly one gets it.
func (s *Store) ClaimCursor(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (int64, bool, error) {
	if name == "" || owner == "" || now.IsZero() || ttl <= 0 {
		return 0, false, errors.New("sqlstore: claim cursor: name, owner, now and ttl are required")
	}
	var (
		pos  int64
		held bool
	)
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO delivery_cursors (name, position, lease_owner, lease_until, updated_at)
			VALUES (?, (SELECT COALESCE(MAX(id), 0) FROM audit_events), '', 0, ?) ON CONFLICT (name) DO NOTHING`), name, ms(now)); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE delivery_cursors SET lease_owner = ?, lease_until = ?, updated_at = ?
			WHERE name = ? AND (lease_owner = ? OR lease_until <= ?)`), owner, ms(now.Add(ttl)), ms(now), name, owner, ms(now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		held = n == 1
		return tx.QueryRowContext(ctx, s.d.rebind(`SELECT position FROM delivery_cursors WHERE name = ?`), name).Scan(&pos)
	})
	if err != nil {
		return 0, false, s.wrap(err, "claim cursor %q", name)
	}
	return pos, held, nil
}

// AdvanceCursor moves the cursor forward and renews the lease, only for the
// lease's owner.
func (s *Store) AdvanceCursor(ctx context.Context, name, owner string, pos int64, now time.Time, ttl time.Duration) error {
	res, err := s.exec(ctx, `UPDATE delivery_cursors
		SET position = CASE WHEN position < ? THEN ? ELSE position END, lease_until = ?, updated_at = ?
		WHERE name = ? AND lease_owner = ?`, pos, pos, ms(now.Add(ttl)), ms(now), name, owner)
	if err == nil {
		err = mustAffect(res)
	}
	if errors.Is(err, store.ErrNotFound) {
		err = fmt.Errorf("lease not held by %q: %w", owner, store.ErrConflict)
	}
	return s.wrap(err, "advance cursor %q", name)
}

// CountLiveFamilies is one COUNT over the (offline, absolute_expires_at)
// index's live range.
func (s *Store) CountLiveFamilies(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT COUNT(*) FROM families
		WHERE offline = ? AND idle_expires_at > ? AND absolute_expires_at > ? AND revoked_at = 0`),
		true, ms(now), ms(now)).Scan(&n)
	if err != nil {
		return 0, s.wrap(err, "count live families")
	}
	return n, nil
}
