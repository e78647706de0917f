package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/latchkey-dev/latchkey/internal/store"
)

var familyTable = table{"families", []string{
	"id", "client_id", "user_id", "scopes", "offline", "generation", "rotated_at", "auth_time",
	"amr", "acr", "policy_version", "credential_epoch", "dpop_jkt", "created_at", "last_used_at",
	"idle_expires_at", "absolute_expires_at", "revoked_at", "revoke_reason",
}}

func scanFamily(sc scanner) (*store.Family, error) {
	dests, finish := familyDests()
	if err := sc.Scan(dests...); err != nil {
		return nil, err
	}
	return finish(), nil
}

// familyDests returns scan destinations for familyTable's columns and the
// function that builds the family from them once scanned.
func familyDests() ([]any, func() *store.Family) {
	var (
		f                                    store.Family
		scopes, amr                          string
		rotated, authTime, created, lastUsed int64
		idleExp, absExp, revoked             int64
	)
	dests := []any{&f.ID, &f.ClientID, &f.UserID, &scopes, &f.Offline, &f.Generation, &rotated, &authTime,
		&amr, &f.ACR, &f.PolicyVersion, &f.CredentialEpoch, &f.DPoPJKT, &created, &lastUsed,
		&idleExp, &absExp, &revoked, &f.RevokeReason}
	return dests, func() *store.Family {
		f.Scopes, f.AMR = splitList(scopes), splitList(amr)
		f.RotatedAt, f.AuthTime, f.CreatedAt, f.LastUsedAt = fromMS(rotated), fromMS(authTime), fromMS(created), fromMS(lastUsed)
		f.IdleExpiresAt, f.AbsoluteExpiresAt, f.RevokedAt = fromMS(idleExp), fromMS(absExp), fromMS(revoked)
		return &f
	}
}

// CreateFamily inserts f; store.ErrConflict if the id exists (a replayed
// code exchange racing the first one).
func (s *Store) CreateFamily(ctx context.Context, f *store.Family) error {
	var e encoder
	args := []any{f.ID, f.ClientID, f.UserID, e.list("scopes", f.Scopes), f.Offline, f.Generation,
		ms(f.RotatedAt), ms(f.AuthTime), e.list("amr", f.AMR), f.ACR, f.PolicyVersion, f.CredentialEpoch,
		f.DPoPJKT, ms(f.CreatedAt), ms(f.LastUsedAt), ms(f.IdleExpiresAt), ms(f.AbsoluteExpiresAt),
		ms(f.RevokedAt), f.RevokeReason}
	if e.err != nil {
		return fmt.Errorf("sqlstore: create family %q: %w", f.ID, e.err)
	}
	_, err := s.exec(ctx, createFamilySQL, append(args, ms(f.IdleExpiresAt))...)
	return s.wrap(err, "create family %q", f.ID)
}

// createFamilySQL inserts familyTable's columns and idle_sweep_at, which
// only the sweep reads: it starts at the family's first idle expiry, and
// rotations, which move idle_expires_at, leave it alone (sweep.go).
var createFamilySQL = "INSERT INTO families (" + familyTable.colList() + ", idle_sweep_at) VALUES (" +
	strings.TrimSuffix(strings.Repeat("?, ", len(familyTable.cols)+1), ", ") + ")"

// GetFamily returns the family, revoked or not; store.ErrNotFound for an
// unknown id.
func (s *Store) GetFamily(ctx context.Context, id string) (*store.Family, error) {
	f, err := scanFamily(s.q().QueryRowContext(ctx, s.d.rebind(familyTable.selectSQL("WHERE id = ?")), id))
	return f, s.wrap(err, "get family %q", id)
}

// The family-with-user reads: the family's and its user's columns (then
// any extra), joined on the family id.
var (
	familyUserCols = familyTable.qualified("f") + ", " + userTable.qualified("u")
	familyUserFrom = " FROM families f JOIN users u ON u.id = f.user_id WHERE f.id = ?"
	familyUserSQL  = "SELECT " + familyUserCols + familyUserFrom
	// accessStateSQL adds the access token's revocation (its jti is the
	// first argument).
	accessStateSQL = "SELECT " + familyUserCols + ", EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = ?)" + familyUserFrom
)

// GetFamilyWithUser returns the family and its user, read in one query
// (one read transaction instead of two on the refresh grant's and
// introspection's hot path). The user is nil when it no longer exists;
// store.ErrNotFound for an unknown family.
func (s *Store) GetFamilyWithUser(ctx context.Context, id string) (*store.Family, *store.User, error) {
	f, u, _, err := s.readFamilyUser(ctx, id, familyUserSQL, []any{id})
	return f, u, err
}

// GetAccessTokenState reads an access token's family, the family's user
// and whether jti is revoked in one query (introspection and userinfo).
func (s *Store) GetAccessTokenState(ctx context.Context, familyID, jti string) (*store.Family, *store.User, bool, error) {
	var revoked bool
	f, u, orphan, err := s.readFamilyUser(ctx, familyID, accessStateSQL, []any{jti, familyID}, &revoked)
	if err == nil && orphan {
		revoked, err = s.AccessTokenRevoked(ctx, jti)
	}
	return f, u, revoked, err
}

// readFamilyUser runs query (one of the family-with-user reads, with args)
// for family id, scanning its extra columns into extra. When it finds no
// row, because there is no such family or because the family's user is gone
// (users are deleted without their families only by hand; the row then
// stays until the sweeper ends it), it reads the family alone and reports
// orphan: the user is nil and extra was not scanned.
func (s *Store) readFamilyUser(ctx context.Context, id, query string, args []any, extra ...any) (f *store.Family, u *store.User, orphan bool, err error) {
	fd, family := familyDests()
	ud, user := userDests()
	err = s.q().QueryRowContext(ctx, s.d.rebind(query), args...).Scan(append(append(fd, ud...), extra...)...)
	if errors.Is(err, sql.ErrNoRows) {
		f, err = s.GetFamily(ctx, id)
		return f, nil, true, err
	}
	if err != nil {
		return nil, nil, false, s.wrap(err, "get family %q with user", id)
	}
	return family(), user(), false, nil
}

// RotateFamily is one compare-and-swap UPDATE: it only matches a live row
// still at generation `from`, so of concurrent rotators exactly one changes
// the row (PostgreSQL re-evaluates the WHERE clause after waiting for the
// row lock; SQLite serialises writers). When nothing matched, a second read
// tells store.ErrNotFound from store.ErrConflict.
func (s *Store) RotateFamily(ctx context.Context, id string, from int64, now, idleExpiresAt time.Time) error {
	return s.rotateFamily(ctx, id, from, now, idleExpiresAt, nil)
}

// RotateFamilyAudited is RotateFamily and, when it matched, the INSERT of
// ev, in one transaction (its own, or the write queue's batch).
func (s *Store) RotateFamilyAudited(ctx context.Context, id string, from int64, now, idleExpiresAt time.Time, ev *store.AuditEvent) error {
	return s.rotateFamily(ctx, id, from, now, idleExpiresAt, ev)
}

func (s *Store) rotateFamily(ctx context.Context, id string, from int64, now, idleExpiresAt time.Time, ev *store.AuditEvent) error {
	// Through the write queue: concurrent rotations (and audit appends)
	// share one commit. Of two rotations of one family in one batch the
	// second matches nothing, as in two transactions.
	var matched error
	var err error
	if s.d == postgresDialect {
		err = s.rotateFamilyPG(ctx, id, from, now, idleExpiresAt, ev, &matched)
	} else {
		err = s.rotateFamilySQLite(ctx, id, from, now, idleExpiresAt, ev, &matched)
	}
	if err == nil {
		err = matched
	}
	if errors.Is(err, store.ErrNotFound) {
		err = s.existsOrNotFound(ctx, id)
		if err == nil {
			err = store.ErrConflict
		}
	}
	return s.wrap(err, "rotate family %q from generation %d", id, from)
}

// rotateFamilySQLite is rotateFamily's write on SQLite: the UPDATE and,
// when it matched and ev != nil, the INSERT of ev, in one transaction (its
// own, or the write queue's batch). matched is set to nil or
// store.ErrNotFound (no live row at generation from).
func (s *Store) rotateFamilySQLite(ctx context.Context, id string, from int64, now, idleExpiresAt time.Time, ev *store.AuditEvent, matched *error) error {
	rotate := func(ctx context.Context, q querier) error {
		res, err := q.ExecContext(ctx, s.d.rebind(rotateFamilySQL), ms(now), ms(now), ms(idleExpiresAt), id, from)
		if err != nil {
			return err
		}
		if *matched = mustAffect(res); *matched != nil || ev == nil {
			return nil
		}
		return q.QueryRowContext(ctx, s.d.rebind(insertAuditSQL), ms(ev.Time), ev.Type, ev.UserID, ev.ClientID, ev.FamilyID, ev.Reason, ev.Detail).Scan(&ev.ID)
	}
	if ev == nil {
		return s.writes.do(s.db.ctx(ctx), rotate)
	}
	// Two statements: alone they need a transaction of their own.
	return s.writes.doTx(s.db.ctx(ctx), func(ctx context.Context, tx *sql.Tx) error {
		return rotate(ctx, txQuerier{tx, s.stmts})
	})
}

// rotateFamilyAuditedPG is the rotation and, if it matched, its audit
// event in one PostgreSQL statement, so that the write queue can pipeline
// it (pipeline.go). No row: the rotation matched nothing.
const rotateFamilyAuditedPG = `WITH r AS (
	UPDATE families
	SET generation = generation + 1, rotated_at = $1, last_used_at = $2, idle_expires_at = $3
	WHERE id = $4 AND generation = $5 AND revoked_at = 0
	RETURNING id)
INSERT INTO audit_events (at, event_type, user_id, client_id, family_id, reason, detail)
SELECT $6::BIGINT, $7::TEXT, $8::TEXT, $9::TEXT, $10::TEXT, $11::TEXT, $12::TEXT FROM r
RETURNING id`

// rotateFamilyPG is rotateFamily's write on PostgreSQL: one statement, with
// the audit event (ev != nil) or without, queued in pipeline form. matched
// is set to nil or store.ErrNotFound (no live row at generation from).
func (s *Store) rotateFamilyPG(ctx context.Context, id string, from int64, now, idleExpiresAt time.Time, ev *store.AuditEvent, matched *error) error {
	if ev == nil {
		query, args := s.d.rebind(rotateFamilySQL), []any{ms(now), ms(now), ms(idleExpiresAt), id, from}
		op := func(ctx context.Context, q querier) error {
			res, err := q.ExecContext(ctx, query, args...)
			if err == nil {
				*matched = mustAffect(res)
			}
			return err
		}
		pg := &pgStmt{query: query, args: args, tag: func(t pgconn.CommandTag) { *matched = mustAffect(tagResult{t.RowsAffected()}) }}
		return s.writes.doStmt(s.db.ctx(ctx), op, pg)
	}
	args := []any{ms(now), ms(now), ms(idleExpiresAt), id, from, ms(ev.Time), ev.Type, ev.UserID, ev.ClientID, ev.FamilyID, ev.Reason, ev.Detail}
	scan := func(err error) error {
		switch {
		case err == nil:
			*matched = nil
		case errors.Is(err, sql.ErrNoRows), errors.Is(err, pgx.ErrNoRows):
			*matched, err = store.ErrNotFound, nil
		}
		return err
	}
	op := func(ctx context.Context, q querier) error {
		return scan(q.QueryRowContext(ctx, rotateFamilyAuditedPG, args...).Scan(&ev.ID))
	}
	pg := &pgStmt{query: rotateFamilyAuditedPG, args: args, row: func(r pgx.Row) error { return scan(r.Scan(&ev.ID)) }}
	return s.writes.doStmt(s.db.ctx(ctx), op, pg)
}

const rotateFamilySQL = `UPDATE families
	SET generation = generation + 1, rotated_at = ?, last_used_at = ?, idle_expires_at = ?
	WHERE id = ? AND generation = ? AND revoked_at = 0`

func (s *Store) existsOrNotFound(ctx context.Context, id string) error {
	var one int
	return s.q().QueryRowContext(ctx, s.d.rebind(`SELECT 1 FROM families WHERE id = ?`), id).Scan(&one)
}

// TouchFamily sets LastUsedAt; store.ErrNotFound for an unknown id.
func (s *Store) TouchFamily(ctx context.Context, id string, now time.Time) error {
	res, err := s.exec(ctx, `UPDATE families SET last_used_at = ? WHERE id = ?`, ms(now), id)
	if err == nil {
		err = mustAffect(res)
	}
	return s.wrap(err, "touch family %q", id)
}

// familyWhere builds the WHERE clause for f (without the keyword); it is
// empty when f selects everything.
func familyWhere(f store.FamilyFilter) (string, []any) {
	var (
		conds []string
		args  []any
	)
	add := func(col, v string) {
		if v != "" {
			conds = append(conds, col+" = ?")
			args = append(args, v)
		}
	}
	add("id", f.ID)
	add("user_id", f.UserID)
	add("client_id", f.ClientID)
	if f.LiveOnly {
		conds = append(conds, "revoked_at = 0")
	}
	return strings.Join(conds, " AND "), args
}

// RevokeFamilies revokes, in one UPDATE, every live family matching f and
// returns their ids sorted. Families already revoked keep their first time
// and reason. A filter without ID, UserID or ClientID is an error: revoking
// everything is never what a caller means. A zero now is an error too,
// since revoked_at = 0 means alive.
func (s *Store) RevokeFamilies(ctx context.Context, f store.FamilyFilter, reason string, now time.Time) ([]string, error) {
	if f.ID == "" && f.UserID == "" && f.ClientID == "" {
		return nil, errors.New("sqlstore: revoke families: empty filter")
	}
	if now.IsZero() {
		return nil, errors.New("sqlstore: revoke families: zero time")
	}
	f.LiveOnly = true
	where, args := familyWhere(f)
	var ids []string
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		ids = ids[:0]
		rows, err := tx.QueryContext(ctx, s.d.rebind(`UPDATE families SET revoked_at = ?, revoke_reason = ? WHERE `+
			where+` RETURNING id`), append([]any{ms(now), reason}, args...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, s.wrap(err, "revoke families")
	}
	sort.Strings(ids)
	return ids, nil
}

// ListFamilies returns the families matching f, oldest first.
func (s *Store) ListFamilies(ctx context.Context, f store.FamilyFilter) ([]*store.Family, error) {
	where, args := familyWhere(f)
	if where != "" {
		where = "WHERE " + where
	}
	rows, err := s.db.QueryContext(ctx, s.d.rebind(familyTable.selectSQL(where+" ORDER BY created_at, id")), args...)
	if err != nil {
		return nil, s.wrap(err, "list families")
	}
	out, err := collect(rows, scanFamily)
	return out, s.wrap(err, "list families")
}

// RevokeAccessToken records jti as revoked until expiresAt. Revoking twice
// is not an error; the first expiry stands (it is the token's own).
func (s *Store) RevokeAccessToken(ctx context.Context, jti string, expiresAt time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?) ON CONFLICT (jti) DO NOTHING`,
		jti, ms(expiresAt))
	return s.wrap(err, "revoke access token")
}

// AccessTokenRevoked reports whether jti is recorded as revoked. Entries
// are kept until Sweep removes them after the token's expiry, when the
// token is rejected for that reason anyway.
func (s *Store) AccessTokenRevoked(ctx context.Context, jti string) (bool, error) {
	var n int
	err := s.q().QueryRowContext(ctx, s.d.rebind(`SELECT COUNT(*) FROM revoked_tokens WHERE jti = ?`), jti).Scan(&n)
	if err != nil {
		return false, s.wrap(err, "access token revoked")
	}
	return n > 0, nil
}
