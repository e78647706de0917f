package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/store/sqlstore"
)

// openStore applies client_cache_ttl: with 0s, a client changed by another
// process (here: another handle on the file) is seen at once, where the
// default would serve the cached record for up to a second.
func TestOpenStoreClientCacheTTL(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.Database = filepath.Join(t.TempDir(), "latchkey.db")
	cfg.ClientCacheTTL = 0
	st, err := openStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	other, err := sqlstore.Open(ctx, cfg.Database)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	now := time.Now().Truncate(time.Millisecond)
	c := &store.Client{ID: "cached", Name: "v1", Public: true, RedirectURIs: []string{"https://app.example/cb"},
		GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid"}, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetClient(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := other.UpdateClient(ctx, c.ID, func(c *store.Client) error { c.Name = "v2"; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, err := st.GetClient(ctx, c.ID); err != nil || got.Name != "v2" {
		t.Fatalf("client_cache_ttl 0s: got %v %v, want v2 at once", got, err)
	}
}
