package sqlstore

import (
	"context"

	"github.com/latchkey-dev/latchkey/internal/store"
)

var userTable = table{"users", []string{
	"id", "username", "password_hash", "name", "email", "disabled", "totp_secret",
	"credential_epoch", "created_at", "updated_at",
}}

func userArgs(u *store.User) ([]any, error) {
	return []any{
		u.ID, u.Username, u.PasswordHash, u.Name, u.Email, u.Disabled, blob(u.TOTPSecret),
		u.CredentialEpoch, ms(u.CreatedAt), ms(u.UpdatedAt),
	}, nil
}

func scanUser(sc scanner) (*store.User, error) {
	dests, finish := userDests()
	if err := sc.Scan(dests...); err != nil {
		return nil, err
	}
	return finish(), nil
}

// userDests returns scan destinations for userTable's columns and the
// function that builds the user from them once scanned.
func userDests() ([]any, func() *store.User) {
	var (
		u            store.User
		created, upd int64
	)
	dests := []any{&u.ID, &u.Username, &u.PasswordHash, &u.Name, &u.Email, &u.Disabled,
		&u.TOTPSecret, &u.CredentialEpoch, &created, &upd}
	return dests, func() *store.User {
		if len(u.TOTPSecret) == 0 {
			u.TOTPSecret = nil
		}
		u.CreatedAt, u.UpdatedAt = fromMS(created), fromMS(upd)
		return &u
	}
}

// CreateUser inserts u; store.ErrConflict if the id or the username exists.
// Usernames are compared exactly: callers normalise them first.
func (s *Store) CreateUser(ctx context.Context, u *store.User) error {
	args, _ := userArgs(u)
	_, err := s.exec(ctx, userTable.insertSQL(), args...)
	return s.wrap(err, "create user %q", u.ID)
}

// GetUser returns store.ErrNotFound for an unknown id.
func (s *Store) GetUser(ctx context.Context, id string) (*store.User, error) {
	u, err := s.getUser(ctx, s.q(), id, "")
	return u, s.wrap(err, "get user %q", id)
}

func (s *Store) getUser(ctx context.Context, q querier, id, suffix string) (*store.User, error) {
	return scanUser(q.QueryRowContext(ctx, s.d.rebind(userTable.selectSQL("WHERE id = ?"+suffix)), id))
}

// GetUserByUsername returns store.ErrNotFound for an unknown username.
func (s *Store) GetUserByUsername(ctx context.Context, username string) (*store.User, error) {
	u, err := scanUser(s.q().QueryRowContext(ctx, s.d.rebind(userTable.selectSQL("WHERE username = ?")), username))
	return u, s.wrap(err, "get user by username %q", username)
}

// ListUsers returns every user ordered by username.
func (s *Store) ListUsers(ctx context.Context) ([]*store.User, error) {
	rows, err := s.db.QueryContext(ctx, userTable.selectSQL("ORDER BY username"))
	if err != nil {
		return nil, s.wrap(err, "list users")
	}
	out, err := collect(rows, scanUser)
	return out, s.wrap(err, "list users")
}

// UpdateUser runs fn on the locked current record and saves the result. The
// id cannot be changed; a username taken by another user is
// store.ErrConflict. fn's error is returned unwrapped; fn may run more than
// once if the transaction is retried.
func (s *Store) UpdateUser(ctx context.Context, id string, fn func(*store.User) error) (*store.User, error) {
	return update(s, ctx, "user", id, userTable, s.getUser, userArgs,
		func(u *store.User) error { err := fn(u); u.ID = id; return err })
}
