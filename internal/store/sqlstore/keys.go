package sqlstore

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey-dev/latchkey/internal/store"
)

var signingKeyTable = table{"signing_keys", []string{
	"id", "alg", "state", "private_key", "public_key", "created_at", "activated_at", "retired_at",
}}

func signingKeyArgs(k *store.SigningKey) ([]any, error) {
	return []any{k.ID, k.Alg, k.State, blob(k.PrivateKey), blob(k.PublicKey),
		ms(k.CreatedAt), ms(k.ActivatedAt), ms(k.RetiredAt)}, nil
}

func scanSigningKey(sc scanner) (*store.SigningKey, error) {
	var (
		k                           store.SigningKey
		created, activated, retired int64
	)
	err := sc.Scan(&k.ID, &k.Alg, &k.State, &k.PrivateKey, &k.PublicKey, &created, &activated, &retired)
	if err != nil {
		return nil, err
	}
	if len(k.PrivateKey) == 0 {
		k.PrivateKey = nil
	}
	if len(k.PublicKey) == 0 {
		k.PublicKey = nil
	}
	k.CreatedAt, k.ActivatedAt, k.RetiredAt = fromMS(created), fromMS(activated), fromMS(retired)
	return &k, nil
}

// CreateSigningKey inserts k; store.ErrConflict if the kid exists.
func (s *Store) CreateSigningKey(ctx context.Context, k *store.SigningKey) error {
	args, _ := signingKeyArgs(k)
	_, err := s.exec(ctx, signingKeyTable.insertSQL(), args...)
	return s.wrap(err, "create signing key %q", k.ID)
}

// ListSigningKeys returns every key, oldest first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]*store.SigningKey, error) {
	rows, err := s.db.QueryContext(ctx, signingKeyTable.selectSQL("ORDER BY created_at, id"))
	if err != nil {
		return nil, s.wrap(err, "list signing keys")
	}
	out, err := collect(rows, scanSigningKey)
	return out, s.wrap(err, "list signing keys")
}

func (s *Store) getSigningKey(ctx context.Context, q querier, id, suffix string) (*store.SigningKey, error) {
	return scanSigningKey(q.QueryRowContext(ctx, s.d.rebind(signingKeyTable.selectSQL("WHERE id = ?"+suffix)), id))
}

// UpdateSigningKey runs fn on the locked current record and saves the
// result, so two instances rotating keys at once cannot both activate one.
// The kid cannot be changed. fn's error is returned unwrapped; fn may run
// more than once if the transaction is retried.
func (s *Store) UpdateSigningKey(ctx context.Context, id string, fn func(*store.SigningKey) error) (*store.SigningKey, error) {
	return update(s, ctx, "signing key", id, signingKeyTable, s.getSigningKey, signingKeyArgs,
		func(k *store.SigningKey) error { err := fn(k); k.ID = id; return err })
}

// AppendAudit inserts e and sets e.ID to the new id, which increases with
// every append. It returns once e is committed; concurrent appends share
// one commit (writequeue.go).
func (s *Store) AppendAudit(ctx context.Context, e *store.AuditEvent) error {
	query, args := s.d.rebind(insertAuditSQL), []any{ms(e.Time), e.Type, e.UserID, e.ClientID, e.FamilyID, e.Reason, e.Detail}
	op := func(ctx context.Context, q querier) error {
		return q.QueryRowContext(ctx, query, args...).Scan(&e.ID)
	}
	var pg *pgStmt
	if s.d == postgresDialect {
		pg = &pgStmt{query: query, args: args, row: func(r pgx.Row) error { return r.Scan(&e.ID) }}
	}
	err := s.writes.doStmt(s.db.ctx(ctx), op, pg)
	return s.wrap(err, "append audit %q", e.Type)
}

const insertAuditSQL = `INSERT INTO audit_events
	(at, event_type, user_id, client_id, family_id, reason, detail)
	VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`

// DefaultAuditLimit is what ListAudit returns when the filter has no limit.
const DefaultAuditLimit = 100

// ListAudit returns the events matching f, newest first (by time, then by
// id for events in the same millisecond).
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]*store.AuditEvent, error) {
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
	add("user_id", f.UserID)
	add("client_id", f.ClientID)
	add("family_id", f.FamilyID)
	where := ""
	if len(conds) > 0 {
		where = "WHERE " + strings.Join(conds, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT id, at, event_type, user_id, client_id, family_id, reason, detail
		FROM audit_events `+where+` ORDER BY at DESC, id DESC LIMIT ?`), append(args, limit)...)
	if err != nil {
		return nil, s.wrap(err, "list audit")
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
	return out, s.wrap(err, "list audit")
}
