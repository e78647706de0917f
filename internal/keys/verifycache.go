package keys

// A cache of verified tokens. Resource servers introspect (RFC 7662) and
// call userinfo with the same access token many times during its life, and
// checking its signature was the largest part of each such request (an
// ES256 verification costs about twice a signature; docs/BENCHMARKS.md). A
// token whose signature checked out once is remembered, by the SHA-256 of
// its whole compact serialization (header, claims and signature), for
// VerifiedTTL: the same string is the same signed token, so a hit skips
// only the signature and header checks, never the caller's checks of
// expiry, revocation and family state, which run on every request.
//
// Why this cannot accept anything Verify would refuse: the entry holds the
// claims that were verified, and only an identical token string hits it. A
// key stops verifying only when its retention ends, which is after every
// token it signed has expired (Retention), so an entry outliving that moment
// by up to VerifiedTTL belongs to an expired token, which callers refuse.

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"sync"
	"time"

	josejson "github.com/go-jose/go-jose/v4/json"
)

// VerifiedTTL is how long a verified token is remembered.
const VerifiedTTL = time.Minute

// maxVerified bounds each of the cache's two generations.
const maxVerified = 8192

type verifiedEntry struct {
	typ     string
	payload []byte
	until   time.Time
}

// verifiedCache keeps two generations: entries go into cur; when cur is
// full it becomes old and a new cur starts, so memory stays bounded
// (2 × maxVerified entries) and recently used tokens survive (a hit in old
// moves the entry to cur).
type verifiedCache struct {
	mu       sync.Mutex
	cur, old map[[32]byte]verifiedEntry
}

// get decodes the remembered claims of raw into out; false when raw is not
// remembered (or for another typ, or expired).
func (c *verifiedCache) get(raw, typ string, now time.Time, out any) bool {
	k := sha256.Sum256([]byte(raw))
	c.mu.Lock()
	e, ok := c.cur[k]
	if !ok {
		if e, ok = c.old[k]; ok && now.Before(e.until) {
			c.putLocked(k, e)
		}
	}
	c.mu.Unlock()
	if !ok || e.typ != typ || !now.Before(e.until) {
		return false
	}
	return josejson.Unmarshal(e.payload, out) == nil
}

// put remembers raw, whose signature and typ were just verified.
func (c *verifiedCache) put(raw, typ string, now time.Time) {
	parts := strings.SplitN(raw, ".", 4)
	if len(parts) != 3 {
		return
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return
	}
	k := sha256.Sum256([]byte(raw))
	c.mu.Lock()
	c.putLocked(k, verifiedEntry{typ: typ, payload: payload, until: now.Add(VerifiedTTL)})
	c.mu.Unlock()
}

func (c *verifiedCache) putLocked(k [32]byte, e verifiedEntry) {
	if c.cur == nil || len(c.cur) >= maxVerified {
		c.old, c.cur = c.cur, make(map[[32]byte]verifiedEntry, 256)
	}
	c.cur[k] = e
}
