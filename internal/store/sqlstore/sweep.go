package sqlstore

import (
	"context"
	"errors"
	"time"
)

// DefaultSweepBatch is the per-table batch Sweep uses when given batch <= 0.
const DefaultSweepBatch = 1000

// ephemeralFamilyGrace is how long, beyond keepDead, a family without a
// refresh token (Offline=false) is kept after its creation: its access
// tokens carry its id and must still resolve while they can be valid, and no
// access token lives longer than this.
const ephemeralFamilyGrace = 24 * time.Hour

// sweepRule is one kind of dead row, deletable through an index on cond.
type sweepRule struct {
	table, key, cond string
	args             []any
}

// Sweep deletes, per table, at most batch dead rows, and returns the total
// deleted; callers repeat it until it returns 0 (or just run it
// periodically). Each rule is its own short DELETE statement so SQLite's
// single write lock is never held for long and several instances may sweep
// at once (they only race to delete the same rows).
//
// Dead rows: sessions, auth requests, revoked-token entries and used jtis
// at or past their expiry; auth codes at or past expiry whether used or not (a used
// code is kept until then so a replay is detected); families revoked more
// than keepDead ago; offline families whose idle or absolute expiry passed
// more than keepDead ago; families without a refresh token created more
// than keepDead+24h ago. Idle-expired families are found through
// idle_sweep_at (rescheduleIdleSweep).
func (s *Store) Sweep(ctx context.Context, now time.Time, keepDead time.Duration, batch int) (int, error) {
	if now.IsZero() {
		return 0, errors.New("sqlstore: sweep: zero time")
	}
	if batch <= 0 {
		batch = DefaultSweepBatch
	}
	nowMS := ms(now)
	dead := ms(now.Add(-keepDead))
	ephemeral := ms(now.Add(-keepDead - ephemeralFamilyGrace))
	tables := [][]sweepRule{
		{{"sessions", "id", "expires_at <= ?", []any{nowMS}}},
		{{"auth_requests", "id", "expires_at <= ?", []any{nowMS}}},
		{{"auth_codes", "id", "expires_at <= ?", []any{nowMS}}},
		{{"revoked_tokens", "jti", "expires_at <= ?", []any{nowMS}}},
		{{"throttles", "throttle_key", "window_end <= ?", []any{nowMS}}},
		{{"used_jtis", "jti_key", "expires_at <= ?", []any{nowMS}}},
		{
			{"families", "id", "revoked_at > 0 AND revoked_at <= ?", []any{dead}},
			{"families", "id", "offline = ? AND idle_sweep_at <= ? AND idle_expires_at > 0 AND idle_expires_at <= ?", []any{true, dead, dead}},
			{"families", "id", "offline = ? AND absolute_expires_at > 0 AND absolute_expires_at <= ?", []any{true, dead}},
			{"families", "id", "offline = ? AND created_at <= ?", []any{false, ephemeral}},
		},
	}
	total := 0
	for _, rules := range tables {
		left := batch
		for _, r := range rules {
			if left <= 0 {
				break
			}
			// DELETE ... LIMIT is not portable (PostgreSQL lacks it, SQLite
			// needs a compile option); a limited key subquery is.
			q := "DELETE FROM " + r.table + " WHERE " + r.key + " IN (SELECT " + r.key + " FROM " + r.table +
				" WHERE " + r.cond + " LIMIT ?)"
			res, err := s.exec(ctx, q, append(r.args[:len(r.args):len(r.args)], left)...)
			if err != nil {
				return total, s.wrap(err, "sweep %s", r.table)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return total, s.wrap(err, "sweep %s", r.table)
			}
			left -= int(n)
			total += int(n)
		}
	}
	return total, s.rescheduleIdleSweep(ctx, dead, batch)
}

// rescheduleIdleSweep moves idle_sweep_at up to idle_expires_at for at
// most batch families whose idle_sweep_at is at or before dead but which
// are still in use (refreshed since). Rotations leave idle_sweep_at alone,
// so that a refresh moves no index entry (migration 0006); it is at or
// before idle_expires_at, which rotations only ever move later (unless a
// client's idle lifetime was shortened meanwhile: then the sweep deletes
// the family later, never sooner). A family's idle_sweep_at is so moved
// at most once per idle lifetime, by the sweep, off the refresh path. A
// family created by a binary from before migration 0006 has idle_sweep_at
// 0, which every sweep selects: it is deleted or given its idle expiry.
func (s *Store) rescheduleIdleSweep(ctx context.Context, dead int64, batch int) error {
	_, err := s.exec(ctx, `UPDATE families SET idle_sweep_at = idle_expires_at WHERE id IN
		(SELECT id FROM families WHERE offline = ? AND idle_sweep_at <= ? AND idle_expires_at > ? LIMIT ?)`,
		true, dead, dead, batch)
	return s.wrap(err, "sweep: reschedule idle families")
}

// PruneAudit deletes up to batch audit events recorded before `before`
// (the audit retention), oldest first, and returns how many it deleted.
func (s *Store) PruneAudit(ctx context.Context, before time.Time, batch int) (int, error) {
	if before.IsZero() {
		return 0, errors.New("sqlstore: prune audit: zero time")
	}
	if batch <= 0 {
		batch = DefaultSweepBatch
	}
	res, err := s.exec(ctx, `DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE at < ? ORDER BY at, id LIMIT ?)`, ms(before), batch)
	if err != nil {
		return 0, s.wrap(err, "prune audit")
	}
	n, err := res.RowsAffected()
	return int(n), s.wrap(err, "prune audit")
}
