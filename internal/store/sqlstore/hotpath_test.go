package sqlstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store/sqlstore"
	"github.com/latchkey-dev/latchkey/internal/testdb"
)

// The reads of every sign-in, /authorize and code exchange run as prepared
// statements from the store's cache on SQLite: parsing their text on each
// request was 13 % of the code flow's CPU (docs/BENCHMARKS.md, session 7).
// Unknown ids are enough: the statement is prepared whatever it finds.
func TestHotPathStatementsPrepared(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	now := time.Now()
	for _, tt := range []struct {
		name string
		call func()
		want []string // fragments of the cached statement texts
	}{
		{"GetSession", func() { _, _ = s.GetSession(ctx, "nope", now) }, []string{"FROM sessions WHERE id = ?"}},
		{"GetAuthRequest", func() { _, _ = s.GetAuthRequest(ctx, "nope", now) }, []string{"FROM auth_requests WHERE id = ?"}},
		{"GetConsent", func() { _, _ = s.GetConsent(ctx, "u", "c") }, []string{"FROM consents WHERE user_id = ? AND client_id = ?"}},
		{"GetUserByUsername", func() { _, _ = s.GetUserByUsername(ctx, "nope") }, []string{"FROM users WHERE username = ?"}},
		{"GetUser", func() { _, _ = s.GetUser(ctx, "nope") }, []string{"FROM users WHERE id = ?"}},
		{"RedeemAuthCode", func() { _, _ = s.RedeemAuthCode(ctx, "nope", now) },
			[]string{"UPDATE auth_codes SET used_at = ?", "FROM auth_codes WHERE id = ?"}},
	} {
		tt.call()
		for _, w := range tt.want {
			if !cached(s, w) {
				t.Errorf("%s: no prepared statement containing %q", tt.name, w)
			}
		}
	}
}

func cached(s *sqlstore.Store, fragment string) bool {
	for _, q := range s.CachedStatements() {
		if strings.Contains(q, fragment) {
			return true
		}
	}
	return false
}
