package sqlstore

// Short-lived records of the sign-in flow: sessions, pending authorization
// requests, authorization codes, and the consents they produce.
//
// A record with an expiry is expired at `now` when ExpiresAt <= now; Sweep
// uses the same rule.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
)

var sessionTable = table{"sessions", []string{
	"id", "user_id", "auth_time", "amr", "acr", "created_at", "expires_at",
}}

// CreateSession inserts s; store.ErrConflict if the id exists.
func (s *Store) CreateSession(ctx context.Context, sess *store.Session) error {
	var e encoder
	args := []any{sess.ID, sess.UserID, ms(sess.AuthTime), e.list("amr", sess.AMR), sess.ACR,
		ms(sess.CreatedAt), ms(sess.ExpiresAt)}
	if e.err != nil {
		return fmt.Errorf("sqlstore: create session: %w", e.err)
	}
	_, err := s.exec(ctx, sessionTable.insertSQL(), args...)
	return s.wrap(err, "create session")
}

// GetSession returns store.ErrNotFound for an unknown session or one
// expired at now.
func (s *Store) GetSession(ctx context.Context, id string, now time.Time) (*store.Session, error) {
	var (
		sess                       store.Session
		amr                        string
		authTime, created, expires int64
	)
	err := s.q().QueryRowContext(ctx, s.d.rebind(sessionTable.selectSQL("WHERE id = ? AND expires_at > ?")), id, ms(now)).
		Scan(&sess.ID, &sess.UserID, &authTime, &amr, &sess.ACR, &created, &expires)
	if err != nil {
		return nil, s.wrap(err, "get session")
	}
	sess.AMR = splitList(amr)
	sess.AuthTime, sess.CreatedAt, sess.ExpiresAt = fromMS(authTime), fromMS(created), fromMS(expires)
	return &sess, nil
}

// DeleteSession deletes the session; deleting an unknown one is not an
// error (sign-out is idempotent).
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	_, err := s.exec(ctx, `DELETE FROM sessions WHERE id = ?`, id)
	return s.wrap(err, "delete session")
}

// DeleteUserSessions signs a user out of every browser (after a credential
// change or when the user is disabled).
func (s *Store) DeleteUserSessions(ctx context.Context, userID string) error {
	_, err := s.exec(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID)
	return s.wrap(err, "delete user sessions")
}

var authRequestTable = table{"auth_requests", []string{
	"id", "client_id", "redirect_uri", "state", "nonce", "code_challenge", "code_challenge_method",
	"scopes", "prompt", "max_age", "acr_values", "created_at", "expires_at", "dpop_jkt",
}}

// CreateAuthRequest inserts r; store.ErrConflict if the id exists.
func (s *Store) CreateAuthRequest(ctx context.Context, r *store.AuthRequest) error {
	var e encoder
	args := []any{r.ID, r.ClientID, r.RedirectURI, r.State, r.Nonce, r.CodeChallenge, r.CodeChallengeMethod,
		e.list("scopes", r.Scopes), e.list("prompt", r.Prompt), r.MaxAge, e.list("acr values", r.ACRValues),
		ms(r.CreatedAt), ms(r.ExpiresAt), r.DPoPJKT}
	if e.err != nil {
		return fmt.Errorf("sqlstore: create auth request %q: %w", r.ID, e.err)
	}
	_, err := s.exec(ctx, authRequestTable.insertSQL(), args...)
	return s.wrap(err, "create auth request %q", r.ID)
}

// GetAuthRequest returns store.ErrNotFound for an unknown request or one
// expired at now.
func (s *Store) GetAuthRequest(ctx context.Context, id string, now time.Time) (*store.AuthRequest, error) {
	var (
		r                   store.AuthRequest
		scopes, prompt, acr string
		created, expires    int64
	)
	err := s.q().QueryRowContext(ctx, s.d.rebind(authRequestTable.selectSQL("WHERE id = ? AND expires_at > ?")), id, ms(now)).
		Scan(&r.ID, &r.ClientID, &r.RedirectURI, &r.State, &r.Nonce, &r.CodeChallenge, &r.CodeChallengeMethod,
			&scopes, &prompt, &r.MaxAge, &acr, &created, &expires, &r.DPoPJKT)
	if err != nil {
		return nil, s.wrap(err, "get auth request %q", id)
	}
	r.Scopes, r.Prompt, r.ACRValues = splitList(scopes), splitList(prompt), splitList(acr)
	r.CreatedAt, r.ExpiresAt = fromMS(created), fromMS(expires)
	return &r, nil
}

// DeleteAuthRequest deletes the request; deleting an unknown one is not an
// error.
func (s *Store) DeleteAuthRequest(ctx context.Context, id string) error {
	_, err := s.exec(ctx, `DELETE FROM auth_requests WHERE id = ?`, id)
	return s.wrap(err, "delete auth request %q", id)
}

var authCodeTable = table{"auth_codes", []string{
	"id", "client_id", "user_id", "redirect_uri", "nonce", "code_challenge", "scopes", "auth_time",
	"amr", "acr", "family_id", "created_at", "expires_at", "used_at", "dpop_jkt",
}}

func scanAuthCode(sc scanner) (*store.AuthCode, error) {
	var (
		c                                  store.AuthCode
		scopes, amr                        string
		authTime, created, expires, usedAt int64
	)
	err := sc.Scan(&c.ID, &c.ClientID, &c.UserID, &c.RedirectURI, &c.Nonce, &c.CodeChallenge, &scopes,
		&authTime, &amr, &c.ACR, &c.FamilyID, &created, &expires, &usedAt, &c.DPoPJKT)
	if err != nil {
		return nil, err
	}
	c.Scopes, c.AMR = splitList(scopes), splitList(amr)
	c.AuthTime, c.CreatedAt, c.ExpiresAt, c.UsedAt = fromMS(authTime), fromMS(created), fromMS(expires), fromMS(usedAt)
	return &c, nil
}

// CreateAuthCode inserts c; store.ErrConflict if the id exists.
func (s *Store) CreateAuthCode(ctx context.Context, c *store.AuthCode) error {
	var e encoder
	args := []any{c.ID, c.ClientID, c.UserID, c.RedirectURI, c.Nonce, c.CodeChallenge, e.list("scopes", c.Scopes),
		ms(c.AuthTime), e.list("amr", c.AMR), c.ACR, c.FamilyID, ms(c.CreatedAt), ms(c.ExpiresAt), ms(c.UsedAt),
		c.DPoPJKT}
	if e.err != nil {
		return fmt.Errorf("sqlstore: create auth code: %w", e.err)
	}
	_, err := s.exec(ctx, authCodeTable.insertSQL(), args...)
	return s.wrap(err, "create auth code")
}

// RedeemAuthCode marks the code used with one conditional UPDATE (used_at
// = 0 → now), so of any number of concurrent redeemers, in any number of
// processes, exactly one changes the row and wins; the database's row lock
// (PostgreSQL re-checks the condition after waiting for it) or write lock
// (SQLite) decides. The losers read the record and get store.ErrAlreadyUsed.
func (s *Store) RedeemAuthCode(ctx context.Context, id string, now time.Time) (*store.AuthCode, error) {
	if now.IsZero() {
		// used_at = 0 means "not used", so a zero now would burn nothing.
		return nil, errors.New("sqlstore: redeem auth code: zero time")
	}
	var code *store.AuthCode
	used := false
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		q := txQuerier{tx, s.stmts} // prepared statements (SQLite)
		var err error
		code, err = scanAuthCode(q.QueryRowContext(ctx,
			s.d.rebind(`UPDATE auth_codes SET used_at = ? WHERE id = ? AND used_at = 0 RETURNING `+authCodeTable.colList()),
			ms(now), id))
		if !errors.Is(err, sql.ErrNoRows) {
			used = false
			return err
		}
		used = true
		code, err = scanAuthCode(q.QueryRowContext(ctx, s.d.rebind(authCodeTable.selectSQL("WHERE id = ?")), id))
		return err
	})
	if err != nil {
		return nil, s.wrap(err, "redeem auth code")
	}
	if used {
		return code, fmt.Errorf("sqlstore: redeem auth code: %w", store.ErrAlreadyUsed)
	}
	return code, nil
}

var consentTable = table{"consents", []string{
	"user_id", "client_id", "scopes", "created_at", "updated_at",
}}

func scanConsent(sc scanner) (*store.Consent, error) {
	var (
		c            store.Consent
		scopes       string
		created, upd int64
	)
	if err := sc.Scan(&c.UserID, &c.ClientID, &scopes, &created, &upd); err != nil {
		return nil, err
	}
	c.Scopes = splitList(scopes)
	c.CreatedAt, c.UpdatedAt = fromMS(created), fromMS(upd)
	return &c, nil
}

// GetConsent returns store.ErrNotFound when the user has not consented to
// the client.
func (s *Store) GetConsent(ctx context.Context, userID, clientID string) (*store.Consent, error) {
	c, err := scanConsent(s.q().QueryRowContext(ctx,
		s.d.rebind(consentTable.selectSQL("WHERE user_id = ? AND client_id = ?")), userID, clientID))
	return c, s.wrap(err, "get consent %q/%q", userID, clientID)
}

// PutConsent upserts c in one statement, keeping created_at of an existing
// row; c.CreatedAt is set to the stored value.
func (s *Store) PutConsent(ctx context.Context, c *store.Consent) error {
	scopes, err := joinList("scopes", c.Scopes)
	if err != nil {
		return fmt.Errorf("sqlstore: put consent: %w", err)
	}
	var created int64
	err = s.writes.do(s.db.ctx(ctx), func(ctx context.Context, q querier) error {
		return q.QueryRowContext(ctx, s.d.rebind(consentTable.insertSQL()+
			` ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at
			RETURNING created_at`),
			c.UserID, c.ClientID, scopes, ms(c.CreatedAt), ms(c.UpdatedAt)).Scan(&created)
	})
	if err != nil {
		return s.wrap(err, "put consent %q/%q", c.UserID, c.ClientID)
	}
	c.CreatedAt = fromMS(created)
	return nil
}

// DeleteConsent deletes the consent; deleting an unknown one is not an
// error.
func (s *Store) DeleteConsent(ctx context.Context, userID, clientID string) error {
	_, err := s.exec(ctx, `DELETE FROM consents WHERE user_id = ? AND client_id = ?`, userID, clientID)
	return s.wrap(err, "delete consent %q/%q", userID, clientID)
}

// ListConsents returns the user's consents ordered by client id.
func (s *Store) ListConsents(ctx context.Context, userID string) ([]*store.Consent, error) {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(consentTable.selectSQL("WHERE user_id = ? ORDER BY client_id")), userID)
	if err != nil {
		return nil, s.wrap(err, "list consents %q", userID)
	}
	out, err := collect(rows, scanConsent)
	return out, s.wrap(err, "list consents %q", userID)
}
