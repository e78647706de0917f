package testdb

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
)

// fakeTB records Fatalf and Skipf instead of ending the real test; it must
// be used on its own goroutine, which those calls end.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func runFake(t *testing.T, fn func(tb testing.TB)) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

func TestPostgresUnreachableFails(t *testing.T) {
	t.Setenv(EnvPostgres, "postgres://postgres:secret@127.0.0.1:1/test?sslmode=disable&connect_timeout=5")
	f := runFake(t, func(tb testing.TB) { Postgres(tb) })
	if f.skip != "" || !strings.Contains(f.fatal, "unreachable") || !strings.Contains(f.fatal, EnvPostgres+"=off") {
		t.Fatalf("got fatal %q, skip %q; want a fatal naming the problem and the way out", f.fatal, f.skip)
	}
	t.Logf("failure message: %s", f.fatal)
	if strings.Contains(f.fatal, "secret") {
		t.Fatalf("the failure message shows the password: %q", f.fatal)
	}
}

func TestPostgresOffSkips(t *testing.T) {
	t.Setenv(EnvPostgres, "off")
	f := runFake(t, func(tb testing.TB) { Postgres(tb) })
	if f.fatal != "" || f.skip == "" {
		t.Fatalf("got fatal %q, skip %q; want a skip", f.fatal, f.skip)
	}
}

func TestPostgresSchemaIsPrivateAndDropped(t *testing.T) {
	if os.Getenv(EnvPostgres) == "off" {
		t.Skipf("%s=off", EnvPostgres)
	}
	var schemas [2]string
	t.Run("use", func(t *testing.T) {
		for i := range schemas {
			s := Postgres(t)
			if err := s.DB().QueryRowContext(t.Context(), "SELECT current_schema()").Scan(&schemas[i]); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ListClients(t.Context()); err != nil {
				t.Fatalf("not migrated: %v", err)
			}
		}
		if !strings.HasPrefix(schemas[0], "t_") || schemas[0] == schemas[1] {
			t.Fatalf("schemas %q, want two distinct t_ schemas", schemas)
		}
	})
	base := os.Getenv(EnvPostgres)
	if base == "" {
		base = DefaultPostgres
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	err = db.QueryRowContext(context.Background(),
		"SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name IN ($1, $2)", schemas[0], schemas[1]).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d test schemas left after cleanup", n)
	}
}

func TestSQLitePathIsMigrated(t *testing.T) {
	a, b := SQLitePath(t), SQLitePath(t)
	if a == b {
		t.Fatalf("two tests share %s", a)
	}
	if _, err := os.Stat(a); err != nil {
		t.Fatal(err)
	}
	s := SQLite(t)
	if _, err := s.ListUsers(t.Context()); err != nil {
		t.Fatalf("not migrated: %v", err)
	}
}
