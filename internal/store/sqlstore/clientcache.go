package sqlstore

// A cache of client records. Every token, introspection and revocation
// request authenticates its client, and reading the client row was one of
// the three or four reads of each such request (about a seventh of an
// introspection's CPU on SQLite, where each read transaction also takes and
// releases the WAL-index locks with fcntl; docs/BENCHMARKS.md). Clients
// change rarely, and only through this package's CreateClient, UpdateClient
// and DeleteClient.
//
// Freshness: a write through this Store drops the entry at once, so this
// instance never answers with a record older than its own last write (a
// read that raced with the write is not cached; see gen). A write by
// another process (another server instance, or the CLI on the same
// database) is seen here within ClientCacheTTL: until then this instance
// may still accept a deleted client or a replaced secret. That bound is
// documented in docs/deployment.md and docs/SECURITY.md.
//
// Unknown ids are not cached, so guessing ids cannot fill the cache, and
// every caller gets its own copy of the record.

import (
	"slices"
	"sync"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
)

// ClientCacheTTL is the default of how long a client record read from the
// database is used before it is read again (configuration:
// client_cache_ttl; Store.SetClientCacheTTL).
const ClientCacheTTL = time.Second

// maxCachedClients bounds the cache; when it is full it starts over.
const maxCachedClients = 4096

type cachedClient struct {
	c     *store.Client
	until time.Time
}

type clientCache struct {
	now func() time.Time

	mu  sync.Mutex
	ttl time.Duration // 0: nothing is cached
	m   map[string]cachedClient
	// gen counts this Store's client writes. A read remembers gen before it
	// queries and caches its result only if gen is unchanged, so a read that
	// overlapped a write (and may have seen the old row) is not kept.
	gen uint64
}

func newClientCache(ttl time.Duration) *clientCache {
	return &clientCache{ttl: ttl, now: time.Now, m: map[string]cachedClient{}}
}

// get returns a copy of the cached record of id, and the generation to
// pass to put when it is not cached.
func (c *clientCache) get(id string) (*store.Client, uint64) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if ok && now.Before(e.until) {
		return cloneClient(e.c), c.gen
	}
	if ok {
		delete(c.m, id)
	}
	return nil, c.gen
}

// put caches a copy of cl, read from the database when the generation was
// gen.
func (c *clientCache) put(cl *store.Client, gen uint64) {
	cp, now := cloneClient(cl), c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || c.ttl <= 0 {
		return
	}
	e := cachedClient{c: cp, until: now.Add(c.ttl)}
	if len(c.m) >= maxCachedClients {
		clear(c.m)
	}
	c.m[cl.ID] = e
}

// setTTL changes the TTL and forgets what is cached.
func (c *clientCache) setTTL(ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ttl = max(ttl, 0)
	c.gen++
	clear(c.m)
}

// invalidate drops id (every client when id is "") after a write, and
// makes reads in flight not cache what they read.
func (c *clientCache) invalidate(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if id == "" {
		clear(c.m)
		return
	}
	delete(c.m, id)
}

func cloneClient(c *store.Client) *store.Client {
	cp := *c
	cp.RedirectURIs = slices.Clone(c.RedirectURIs)
	cp.GrantTypes = slices.Clone(c.GrantTypes)
	cp.Scopes = slices.Clone(c.Scopes)
	return &cp
}
