package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
)

var clientTable = table{"clients", []string{
	"id", "name", "secret_hash", "is_public", "redirect_uris", "grant_types", "scopes",
	"refresh_idle_ms", "refresh_absolute_ms", "reuse_report_only", "require_mfa",
	"policy_version", "created_at", "updated_at", "require_dpop", "jwks",
	"id_token_signed_response_alg",
}}

func clientArgs(c *store.Client) ([]any, error) {
	var e encoder
	args := []any{
		c.ID, c.Name, c.SecretHash, c.Public, jsonList(c.RedirectURIs),
		e.list("grant types", c.GrantTypes), e.list("scopes", c.Scopes),
		durMS(c.RefreshIdle), durMS(c.RefreshAbsolute), c.ReuseReportOnly, c.RequireMFA,
		c.PolicyVersion, ms(c.CreatedAt), ms(c.UpdatedAt), c.RequireDPoP, c.JWKS,
		c.IDTokenAlg,
	}
	return args, e.err
}

func scanClient(sc scanner) (*store.Client, error) {
	var (
		c                            store.Client
		redirects, grants, scopes    string
		idle, absolute, created, upd int64
	)
	err := sc.Scan(&c.ID, &c.Name, &c.SecretHash, &c.Public, &redirects, &grants, &scopes,
		&idle, &absolute, &c.ReuseReportOnly, &c.RequireMFA, &c.PolicyVersion, &created, &upd,
		&c.RequireDPoP, &c.JWKS, &c.IDTokenAlg)
	if err != nil {
		return nil, err
	}
	if c.RedirectURIs, err = fromJSONList(redirects); err != nil {
		return nil, err
	}
	c.GrantTypes, c.Scopes = splitList(grants), splitList(scopes)
	c.RefreshIdle, c.RefreshAbsolute = fromDurMS(idle), fromDurMS(absolute)
	c.CreatedAt, c.UpdatedAt = fromMS(created), fromMS(upd)
	return &c, nil
}

// CreateClient inserts c; store.ErrConflict if the id exists.
func (s *Store) CreateClient(ctx context.Context, c *store.Client) error {
	args, err := clientArgs(c)
	if err != nil {
		return fmt.Errorf("sqlstore: create client %q: %w", c.ID, err)
	}
	_, err = s.exec(ctx, clientTable.insertSQL(), args...)
	s.clients.invalidate(c.ID)
	if err == nil {
		s.notifyClientWrite(ctx, c.ID)
	}
	return s.wrap(err, "create client %q", c.ID)
}

// GetClient returns store.ErrNotFound for an unknown id. Records are
// cached for up to ClientCacheTTL, or what SetClientCacheTTL set
// (clientcache.go).
func (s *Store) GetClient(ctx context.Context, id string) (*store.Client, error) {
	cached, gen := s.clients.get(id)
	if cached != nil {
		return cached, nil
	}
	c, err := s.getClient(ctx, s.q(), id, "")
	if err != nil {
		return nil, s.wrap(err, "get client %q", id)
	}
	s.clients.put(c, gen)
	return c, nil
}

// SetClientCacheTTL sets how long client records are cached (0: not at
// all; the default is ClientCacheTTL) and empties the cache.
func (s *Store) SetClientCacheTTL(ttl time.Duration) { s.clients.setTTL(ttl) }

// getClient reads one client; suffix is "" or the dialect's FOR UPDATE.
func (s *Store) getClient(ctx context.Context, q querier, id, suffix string) (*store.Client, error) {
	return scanClient(q.QueryRowContext(ctx, s.d.rebind(clientTable.selectSQL("WHERE id = ?"+suffix)), id))
}

// ListClients returns every client ordered by id.
func (s *Store) ListClients(ctx context.Context) ([]*store.Client, error) {
	rows, err := s.db.QueryContext(ctx, clientTable.selectSQL("ORDER BY id"))
	if err != nil {
		return nil, s.wrap(err, "list clients")
	}
	out, err := collect(rows, scanClient)
	return out, s.wrap(err, "list clients")
}

// UpdateClient runs fn on the locked current record and saves the result.
// The id cannot be changed. fn's error is returned unwrapped; fn may run
// more than once if the transaction is retried.
func (s *Store) UpdateClient(ctx context.Context, id string, fn func(*store.Client) error) (*store.Client, error) {
	defer s.clients.invalidate(id)
	c, err := update(s, ctx, "client", id, clientTable, s.getClient, clientArgs,
		func(c *store.Client) error { err := fn(c); c.ID = id; return err })
	if err == nil {
		s.notifyClientWrite(ctx, id)
	}
	return c, err
}

// DeleteClient deletes the client and its consents in one transaction;
// store.ErrNotFound if it does not exist. Families are not touched: callers
// revoke them first, and the audit trail keeps referring to the id.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.d.rebind(`DELETE FROM consents WHERE client_id = ?`), id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.d.rebind(`DELETE FROM clients WHERE id = ?`), id)
		if err != nil {
			return err
		}
		return mustAffect(res)
	})
	s.clients.invalidate(id)
	if err == nil {
		s.notifyClientWrite(ctx, id)
	}
	return s.wrap(err, "delete client %q", id)
}

// collect scans every row and closes rows.
func collect[T any](rows *sql.Rows, scan func(scanner) (*T, error)) ([]*T, error) {
	defer rows.Close()
	var out []*T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// fnError carries the error of a caller's update function through the
// transaction helper, which neither wraps nor retries it.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// update is the read-modify-write shared by UpdateClient, UpdateUser and
// UpdateSigningKey: in one write transaction it reads the row (locking it
// on PostgreSQL), runs fn, and writes every column back.
func update[T any](s *Store, ctx context.Context, what, id string, t table,
	get func(context.Context, querier, string, string) (*T, error),
	toArgs func(*T) ([]any, error), fn func(*T) error,
) (*T, error) {
	var out *T
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		v, err := get(ctx, tx, id, s.d.forUpdate)
		if err != nil {
			return err
		}
		if err := fn(v); err != nil {
			return fnError{err}
		}
		args, err := toArgs(v)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.d.rebind(t.updateSQL()), updateArgs(args, id)...)
		if err != nil {
			return err
		}
		if err := mustAffect(res); err != nil {
			return err
		}
		// Return what a later read returns (times in UTC, at millisecond
		// precision), not what fn left in v.
		out, err = get(ctx, tx, id, "")
		return err
	})
	var fe fnError
	if errors.As(err, &fe) {
		return nil, fe.err
	}
	if err != nil {
		return nil, s.wrap(err, "update %s %q", what, id)
	}
	return out, nil
}
