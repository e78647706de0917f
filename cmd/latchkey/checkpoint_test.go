package main

import (
	"context"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/store/sqlstore"
	"github.com/latchkey-dev/latchkey/internal/testdb"
)

// sqlite_checkpoint_interval (LATCHKEY_SQLITE_CHECKPOINT_INTERVAL) reaches
// the store every command opens; the default is 2 s.
func TestOpenStoreCheckpointInterval(t *testing.T) {
	for _, tt := range []struct {
		env  string
		want time.Duration
	}{{"", 2 * time.Second}, {"5s", 5 * time.Second}, {"750ms", 750 * time.Millisecond}} {
		env := map[string]string{"LATCHKEY_DATABASE": testdb.SQLitePath(t)}
		if tt.env != "" {
			env["LATCHKEY_SQLITE_CHECKPOINT_INTERVAL"] = tt.env
		}
		cfg, err := loadConfig(commonFlags{}, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err != nil {
			t.Fatal(err)
		}
		st, err := openStore(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.CheckpointInterval(); got != tt.want {
			t.Errorf("LATCHKEY_SQLITE_CHECKPOINT_INTERVAL=%q: interval %v, want %v", tt.env, got, tt.want)
		}
		st.Close()
	}
}

// config validates sqlite_checkpoint_interval against literal bounds (it
// does not import the store); they must be the store's.
func TestCheckpointIntervalBoundsMatchStore(t *testing.T) {
	for _, tt := range []struct {
		d     time.Duration
		valid bool
	}{
		{sqlstore.MinCheckpointInterval, true}, {sqlstore.MaxCheckpointInterval, true},
		{sqlstore.MinCheckpointInterval - time.Millisecond, false}, {sqlstore.MaxCheckpointInterval + time.Millisecond, false},
	} {
		cfg := config.Default()
		cfg.SQLiteCheckpointInterval = config.Duration(tt.d)
		if err := cfg.Validate(); (err == nil) != tt.valid {
			t.Errorf("sqlite_checkpoint_interval %v: Validate() = %v, want valid %v", tt.d, err, tt.valid)
		}
	}
}
