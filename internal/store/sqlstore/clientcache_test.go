package sqlstore_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/store/sqlstore"
)

func cacheTestClient(name string) *store.Client {
	now := time.Now().Truncate(time.Millisecond)
	return &store.Client{
		ID: "cache-" + rand.Text()[:12], Name: name, SecretHash: "sha256$one",
		RedirectURIs: []string{"https://app.example/cb"}, GrantTypes: []string{"authorization_code", "refresh_token"},
		Scopes: []string{"openid", "offline_access"}, CreatedAt: now, UpdatedAt: now,
	}
}

// TestClientCache: this handle's own client writes are seen at once, another
// handle's (another instance, or the CLI) within ClientCacheTTL; callers get
// copies; unknown ids are not cached.
func TestClientCache(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := t.Context()
			s1 := e.open(t)
			var clock atomic.Int64
			clock.Store(time.Now().UnixNano())
			s1.SetClientCacheClock(func() time.Time { return time.Unix(0, clock.Load()) })
			step := func() { clock.Add(int64(sqlstore.ClientCacheTTL)) }
			s2, err := s1.Reopen(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s2.Close() })
			get := func(s store.Store, id string) *store.Client {
				t.Helper()
				c, err := s.GetClient(ctx, id)
				if err != nil {
					t.Fatalf("get %s: %v", id, err)
				}
				return c
			}
			rename := func(s store.Store, id, name, secret string) {
				t.Helper()
				if _, err := s.UpdateClient(ctx, id, func(c *store.Client) error { c.Name, c.SecretHash = name, secret; return nil }); err != nil {
					t.Fatal(err)
				}
			}

			c := cacheTestClient("v1")
			if err := s1.CreateClient(ctx, c); err != nil {
				t.Fatal(err)
			}
			got := get(s1, c.ID)
			// A caller changing its copy changes nothing for the next one.
			got.Name, got.RedirectURIs[0], got.Scopes[0] = "mutated", "https://evil.example/", "admin"
			if got := get(s1, c.ID); got.Name != "v1" || got.RedirectURIs[0] != "https://app.example/cb" || got.Scopes[0] != "openid" {
				t.Fatalf("a caller's changes leaked into the cache: %+v", got)
			}

			// This handle's own write: seen at once.
			rename(s1, c.ID, "v2", "sha256$two")
			if got := get(s1, c.ID); got.Name != "v2" || got.SecretHash != "sha256$two" {
				t.Fatalf("own update not seen at once: %+v", got)
			}

			// Another handle's write: the cached record serves until the TTL
			// has passed, then the new one.
			rename(s2, c.ID, "v3", "sha256$three")
			if got := get(s1, c.ID); got.Name != "v2" {
				t.Fatalf("within the TTL: got %q, want the cached v2 (is the cache in use?)", got.Name)
			}
			step()
			if got := get(s1, c.ID); got.Name != "v3" || got.SecretHash != "sha256$three" {
				t.Fatalf("after the TTL: got %+v, want v3", got)
			}
			if err := s2.DeleteClient(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
			step()
			if _, err := s1.GetClient(ctx, c.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("deleted elsewhere, after the TTL: got %v, want ErrNotFound", err)
			}

			// This handle's own delete: at once.
			d := cacheTestClient("doomed")
			if err := s1.CreateClient(ctx, d); err != nil {
				t.Fatal(err)
			}
			get(s1, d.ID)
			if err := s1.DeleteClient(ctx, d.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s1.GetClient(ctx, d.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("own delete: got %v, want ErrNotFound", err)
			}

			// An unknown id is not remembered as unknown.
			n := cacheTestClient("new")
			if _, err := s1.GetClient(ctx, n.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("unknown: got %v", err)
			}
			if err := s2.CreateClient(ctx, n); err != nil {
				t.Fatal(err)
			}
			get(s1, n.ID)
		})
	}
}

// TestClientCacheOwnWritesRace: readers keep the record cached while this
// handle updates it; after each update returns, a read sees it. A read that
// overlapped the update must not put the old record back in the cache.
func TestClientCacheOwnWritesRace(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := t.Context()
			s := e.open(t)
			c := cacheTestClient("v0")
			if err := s.CreateClient(ctx, c); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						if _, err := s.GetClient(ctx, c.ID); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			for i := 1; i <= 200; i++ {
				name := fmt.Sprintf("v%d", i)
				if _, err := s.UpdateClient(ctx, c.ID, func(c *store.Client) error { c.Name = name; return nil }); err != nil {
					t.Fatal(err)
				}
				if got, err := s.GetClient(ctx, c.ID); err != nil || got.Name != name {
					close(stop)
					wg.Wait()
					t.Fatalf("after update %d: got %v %v, want %s", i, got, err, name)
				}
			}
			close(stop)
			wg.Wait()
		})
	}
}

// TestClientCacheOff: with SetClientCacheTTL(0) (client_cache_ttl: 0s)
// every read goes to the database, so another handle's writes are seen at
// once.
func TestClientCacheOff(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := t.Context()
			s1 := e.open(t)
			s1.SetClientCacheTTL(0)
			s2, err := s1.Reopen(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s2.Close() })
			c := cacheTestClient("v1")
			if err := s1.CreateClient(ctx, c); err != nil {
				t.Fatal(err)
			}
			if _, err := s1.GetClient(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s2.UpdateClient(ctx, c.ID, func(c *store.Client) error { c.Name = "v2"; return nil }); err != nil {
				t.Fatal(err)
			}
			if got, err := s1.GetClient(ctx, c.ID); err != nil || got.Name != "v2" {
				t.Fatalf("cache off: got %v %v, want v2 at once", got, err)
			}
			if err := s2.DeleteClient(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s1.GetClient(ctx, c.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("cache off, deleted elsewhere: got %v, want ErrNotFound at once", err)
			}
		})
	}
}
