// Package throttle slows password and code guessing: failed attempts are
// counted per account and per source address in the store, so the limits
// hold across every instance. Unknown usernames are counted like known ones
// and every refusal reads the same, so throttling reveals no accounts.
package throttle

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/latchkey-dev/latchkey/internal/secret"
	"github.com/latchkey-dev/latchkey/internal/store"
)

// Limiter counts failures. Zero limits disable a dimension.
type Limiter struct {
	Store store.Store
	Now   func() time.Time
	Log   *slog.Logger
	// PerAccount and PerAddress failures are allowed per Window.
	PerAccount int
	PerAddress int
	Window     time.Duration
	// Scope separates limiters that share the store: "" for sign-in
	// (accounts are usernames), "client" for client authentication at the
	// token, revocation and introspection endpoints (accounts are client
	// ids), so each counts its own failures per address too.
	Scope string
}

func (l *Limiter) accountKey(username string) string {
	return secret.SHA256(l.scope() + "acct|" + strings.ToLower(username))
}

func (l *Limiter) addressKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return secret.SHA256(l.scope() + "addr|" + host)
}

func (l *Limiter) scope() string {
	if l.Scope == "" {
		return ""
	}
	return l.Scope + "/"
}

// Check returns how long the caller must wait, or 0 when the attempt may
// proceed. Store errors fail open (logged): an outage of the counter must not
// lock everyone out.
func (l *Limiter) Check(ctx context.Context, r *http.Request, username string) time.Duration {
	now := l.Now()
	var wait time.Duration
	for _, k := range []struct {
		key   string
		limit int
	}{{l.accountKey(username), l.PerAccount}, {l.addressKey(r), l.PerAddress}} {
		if k.limit <= 0 {
			continue
		}
		n, end, err := l.Store.GetThrottle(ctx, k.key, now)
		if err != nil {
			l.Log.Warn("throttle check", slog.Any("error", err))
			continue
		}
		if n >= k.limit && end.Sub(now) > wait {
			wait = end.Sub(now)
		}
	}
	return wait
}

// Fail counts a failed attempt.
func (l *Limiter) Fail(ctx context.Context, r *http.Request, username string) {
	for _, k := range []string{l.accountKey(username), l.addressKey(r)} {
		if _, _, err := l.Store.HitThrottle(ctx, k, l.Now(), l.Window); err != nil {
			l.Log.Warn("throttle hit", slog.Any("error", err))
		}
	}
}

// Succeed clears the account's failures after a successful sign-in.
func (l *Limiter) Succeed(ctx context.Context, r *http.Request, username string) {
	if err := l.Store.ResetThrottle(ctx, l.accountKey(username)); err != nil {
		l.Log.Warn("throttle reset", slog.Any("error", err))
	}
}
