package sqlstore_test

import (
	"testing"

	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/store/storetest"
	"github.com/latchkey-dev/latchkey/internal/testdb"
)

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return testdb.SQLite(t) })
}

func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return testdb.Postgres(t) })
}
