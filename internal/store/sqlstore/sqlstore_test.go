package sqlstore_test

import (
	"testing"

	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/store/sqlstore"
	"github.com/latchkey-dev/latchkey/internal/store/storetest"
	"github.com/latchkey-dev/latchkey/internal/testdb"
)

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return testdb.SQLite(t) })
}

func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return testdb.Postgres(t) })
}

// engines are the two databases, for engine-level tests that run on both.
var engines = []struct {
	name string
	open func(testing.TB) *sqlstore.Store
}{{"sqlite", testdb.SQLite}, {"postgres", testdb.Postgres}}
