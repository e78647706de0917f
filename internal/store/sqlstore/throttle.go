package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// HitThrottle records one failure for key in a fixed window, atomically
// (one upsert, so concurrent instances never lose a count), and returns the
// count in the current window and when it ends.
func (s *Store) HitThrottle(ctx context.Context, key string, now time.Time, window time.Duration) (int, time.Time, error) {
	var count, end int64
	nowMS, endMS := ms(now), ms(now.Add(window))
	err := s.writes.do(s.db.ctx(ctx), func(ctx context.Context, q querier) error {
		return q.QueryRowContext(ctx, s.d.rebind(`INSERT INTO throttles (throttle_key, count, window_end) VALUES (?, 1, ?)
			ON CONFLICT (throttle_key) DO UPDATE SET
			  count = CASE WHEN throttles.window_end <= ? THEN 1 ELSE throttles.count + 1 END,
			  window_end = CASE WHEN throttles.window_end <= ? THEN ? ELSE throttles.window_end END
			RETURNING count, window_end`), key, endMS, nowMS, nowMS, endMS).Scan(&count, &end)
	})
	if err != nil {
		return 0, time.Time{}, s.wrap(err, "hit throttle")
	}
	return int(count), fromMS(end), nil
}

// GetThrottle returns the failures counted for key in the window that is
// current at now (0 when none).
func (s *Store) GetThrottle(ctx context.Context, key string, now time.Time) (int, time.Time, error) {
	var count, end int64
	err := s.q().QueryRowContext(ctx, s.d.rebind(`SELECT count, window_end FROM throttles WHERE throttle_key = ? AND window_end > ?`), key, ms(now)).Scan(&count, &end)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, s.wrap(err, "get throttle")
	}
	return int(count), fromMS(end), nil
}

// ResetThrottle forgets key's failures (after a successful sign-in).
func (s *Store) ResetThrottle(ctx context.Context, key string) error {
	_, err := s.exec(ctx, `DELETE FROM throttles WHERE throttle_key = ?`, key)
	return s.wrap(err, "reset throttle")
}
