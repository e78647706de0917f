package sqlstore

import "testing"

func TestRebind(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"a = ? AND b = ?", "a = $1 AND b = $2"},
		{"x IN (?, ?, ?) LIMIT ?", "x IN ($1, $2, $3) LIMIT $4"},
		{"s = '?' AND t = ?", "s = '?' AND t = $1"},
		{`"odd?col" = ? AND u = 'it''s ?'`, `"odd?col" = $1 AND u = 'it''s ?'`},
	} {
		if got := postgresDialect.rebind(tc.in); got != tc.want {
			t.Errorf("rebind(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := sqliteDialect.rebind(tc.in); got != tc.in {
			t.Errorf("sqlite rebind(%q) = %q, want it unchanged", tc.in, got)
		}
	}
}
