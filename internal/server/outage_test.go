package server_test

// What clients see when the database is briefly unavailable: 503
// temporarily_unavailable with a JSON body (never a panic, never a 500 for
// connection trouble, never a half-rotated family), /readyz 503 while
// /healthz and the in-memory endpoints keep answering, and recovery without
// a restart.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/testdb"
	"github.com/latchkey-dev/latchkey/internal/testserver"
)

// tcpProxy forwards connections to target until stopped; stopping closes
// the listener (new connections are refused) and cuts every open one, like
// a database restart or a network partition; start listens again on the
// same address.
type tcpProxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{t: t, target: target, addr: "127.0.0.1:0", conns: map[net.Conn]bool{}}
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *tcpProxy) start() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.serve(c) })
		}
	})
}

func (p *tcpProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return false
	}
	p.conns[c] = true
	return true
}

func (p *tcpProxy) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client) || !p.track(server) {
		client.Close()
		server.Close()
		return
	}
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		dst.Close()
		src.Close()
	}
	wg.Go(func() { pipe(server, client) })
	wg.Go(func() { pipe(client, server) })
	wg.Wait()
}

func (p *tcpProxy) stop() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func wantUnavailable(t *testing.T, what string, r testserver.Response) {
	t.Helper()
	if r.Status != http.StatusServiceUnavailable || r.Str("error") != oauth.TemporarilyUnavailable || r.Str("error_description") == "" ||
		!strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("%s while the database is down: %d %s %v, want 503 temporarily_unavailable JSON", what, r.Status, r.Header.Get("Content-Type"), r.Body)
	}
}

// PostgreSQL goes away under a running instance and comes back.
func TestDatabaseOutagePostgres(t *testing.T) {
	u, err := url.Parse(testdb.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, u.Host)
	u.Host = proxy.addr
	ts := testserver.StartOn(t, openHandle(t, u.String()))
	tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
	r1 := mustRefresh(t, ts, tok.RefreshToken)
	rt := r1.Str("refresh_token")
	fid := familyOf(t, ts, rt).ID

	proxy.stop()
	wantUnavailable(t, "refresh", refreshWeb(ts, rt))
	wantUnavailable(t, "code exchange", ts.Post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {"lkac_x"},
		"redirect_uri": {testserver.Redirect}}, testserver.WebClient, testserver.WebSecret))
	wantUnavailable(t, "introspection", introspect(ts, r1.Str("access_token")))
	wantUnavailable(t, "revocation", ts.Post("/revoke", url.Values{"token": {rt}}, testserver.WebClient, testserver.WebSecret))
	if code, _ := get(t, ts.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while the database is down: %d", code)
	}
	// Liveness and what is served from memory are unaffected: a load
	// balancer takes the instance out (readyz) but nothing restarts it.
	for _, p := range []string{"/healthz", "/jwks", "/.well-known/openid-configuration"} {
		if code, body := get(t, ts.URL+p); code != 200 {
			t.Errorf("%s while the database is down: %d %.200s", p, code, body)
		}
	}

	proxy.start()
	if code, _ := get(t, ts.URL+"/readyz"); code != 200 {
		t.Fatalf("/readyz after the database came back: %d", code)
	}
	// The failed refresh changed nothing: the same token rotates now, by
	// exactly one generation.
	r2 := mustRefresh(t, ts, rt)
	f, err := ts.Store.GetFamily(context.Background(), fid)
	if err != nil {
		t.Fatal(err)
	}
	if f.Generation != 3 || !f.RevokedAt.IsZero() {
		t.Fatalf("family after the outage: generation %d revoked %q", f.Generation, f.RevokeReason)
	}
	mustRefresh(t, ts, r2.Str("refresh_token"))
	if strings.Contains(ts.Logs.String(), `"panic"`) {
		t.Error("a handler panicked during the outage")
	}
}

// The store handle closed under a running instance (as at shutdown), on
// both engines.
func TestStoreClosedUnderServer(t *testing.T) {
	for _, e := range []struct {
		name string
		open func(testing.TB) store.Store
	}{
		{"sqlite", func(t testing.TB) store.Store { return testdb.SQLite(t) }},
		{"postgres", func(t testing.TB) store.Store { return testdb.Postgres(t) }},
	} {
		t.Run(e.name, func(t *testing.T) {
			st := e.open(t)
			ts := testserver.StartOn(t, st)
			tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			wantUnavailable(t, "refresh", refreshWeb(ts, tok.RefreshToken))
			if code, _ := get(t, ts.URL+"/readyz"); code != http.StatusServiceUnavailable {
				t.Errorf("/readyz with a closed store: %d", code)
			}
		})
	}
}

// flakyStore fails the rotation (RotateFamily, and RotateFamilyAudited,
// which the refresh grant uses) on demand: before it reaches the database,
// or after the UPDATE committed (the connection died before the answer
// arrived — the one ambiguous case).
type flakyStore struct {
	store.Store
	mode atomic.Int32 // 0 pass, 1 fail before, 2 fail after commit
}

func (f *flakyStore) RotateFamily(ctx context.Context, id string, from int64, now, idle time.Time) error {
	return f.inject(func() error { return f.Store.RotateFamily(ctx, id, from, now, idle) })
}

func (f *flakyStore) RotateFamilyAudited(ctx context.Context, id string, from int64, now, idle time.Time, ev *store.AuditEvent) error {
	return f.inject(func() error { return f.Store.RotateFamilyAudited(ctx, id, from, now, idle, ev) })
}

func (f *flakyStore) inject(rotate func() error) error {
	switch f.mode.Load() {
	case 1:
		return fmt.Errorf("injected: connection refused: %w", store.ErrUnavailable)
	case 2:
		if err := rotate(); err != nil {
			return err
		}
		return fmt.Errorf("injected: connection lost after commit: %w", store.ErrUnavailable)
	}
	return rotate()
}

// A failed rotation never leaves a half-written family: failing before the
// UPDATE changes nothing; failing after it committed leaves the family one
// generation on, and the client's retry (inside the grace window) gets the
// successor it missed, so the family does not fork or end.
func TestRotationFailureLeavesFamilyConsistent(t *testing.T) {
	flaky := &flakyStore{Store: testdb.Postgres(t)}
	ts := testserver.StartOn(t, flaky)
	tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
	fid := familyOf(t, ts, tok.RefreshToken).ID
	gen := func() int64 {
		f, err := flaky.GetFamily(context.Background(), fid)
		if err != nil {
			t.Fatal(err)
		}
		if !f.RevokedAt.IsZero() {
			t.Fatalf("family revoked: %s", f.RevokeReason)
		}
		return f.Generation
	}

	flaky.mode.Store(1)
	wantUnavailable(t, "refresh failing before the update", refreshWeb(ts, tok.RefreshToken))
	if g := gen(); g != 1 {
		t.Fatalf("a rotation that failed before the update moved the family to generation %d", g)
	}

	flaky.mode.Store(2)
	wantUnavailable(t, "refresh failing after the commit", refreshWeb(ts, tok.RefreshToken))
	if g := gen(); g != 2 {
		t.Fatalf("generation %d after a committed rotation", g)
	}
	flaky.mode.Store(0)
	ts.Clock.Advance(time.Second) // the client's prompt retry
	retry := mustRefresh(t, ts, tok.RefreshToken)
	if g := gen(); g != 2 {
		t.Fatalf("the retry rotated again: generation %d", g)
	}
	next := mustRefresh(t, ts, retry.Str("refresh_token"))
	if g := gen(); g != 3 || next.Str("refresh_token") == "" {
		t.Fatalf("after the retry's successor was used: generation %d", g)
	}
}
