package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/flow"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/server"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/testdb"
)

// clock is a test clock that can be moved forward.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testServer is a running Latchkey on a real store, reached over HTTP.
type testServer struct {
	t      *testing.T
	URL    string
	Store  store.Store
	Clock  *clock
	Logs   *syncBuffer
	Config config.Config
	// secrets collects every token, code, secret and password the test saw,
	// so the cleanup can check none reached a log line.
	secretsMu sync.Mutex
	secrets   []string
}

const (
	webClient   = "web-app"
	webSecret   = "web-app-secret-0123456789abcdefghijklmnop"
	shortClient = "short-secret-app"
	shortSecret = "s3cret-pw" // under secret.LongSecret: stored with argon2id
	spaClient   = "spa-app"
	otherClient = "other-app"
	otherSecret = "other-app-secret-0123456789abcdefghijklmn"
	alice       = "alice"
	alicePW     = "correct horse battery staple"
	bob         = "bob"
	bobPW       = "bob's long password"
	redirect    = "http://localhost:9999/callback"
)

type serverOption func(*config.Config)

// newTestServer starts a server on a fresh SQLite database (or the given
// store) with two users and four clients.
func newTestServer(t *testing.T, opts ...serverOption) *testServer {
	t.Helper()
	return newTestServerOn(t, testdb.SQLite(t), opts...)
}

func newTestServerOn(t *testing.T, st store.Store, opts ...serverOption) *testServer {
	t.Helper()
	ctx := context.Background()
	hs := httptest.NewUnstartedServer(nil)
	ts := &testServer{t: t, URL: "http://" + hs.Listener.Addr().String(), Store: st, Clock: &clock{}, Logs: &syncBuffer{}}
	cfg := config.Default()
	cfg.Issuer = ts.URL
	cfg.Dev = true
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ts.Config = cfg
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	log := slog.New(slog.NewJSONHandler(ts.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.New(ctx, cfg, server.Options{Store: st, MasterKey: master, Log: log, Now: ts.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = srv.Handler()
	hs.Start()
	t.Cleanup(hs.Close)
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, c := range []operator.ClientSpec{
		{ID: webClient, Name: "Web App", Secret: webSecret, RedirectURIs: []string{redirect}},
		{ID: shortClient, Name: "Short Secret App", Secret: shortSecret, RedirectURIs: []string{redirect}},
		{ID: spaClient, Name: "SPA", Public: true, RedirectURIs: []string{redirect}},
		{ID: otherClient, Name: "Other App", Secret: otherSecret, RedirectURIs: []string{redirect}},
	} {
		if _, err := operator.CreateClient(ctx, st, c, now); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []operator.UserSpec{{Username: alice, Password: alicePW, Name: "Alice Liddell", Email: "alice@example.com"}, {Username: bob, Password: bobPW}} {
		if _, err := operator.CreateUser(ctx, st, u, now); err != nil {
			t.Fatal(err)
		}
	}
	ts.remember(webSecret, shortSecret, otherSecret, alicePW, bobPW)
	t.Cleanup(ts.checkLogs)
	return ts
}

func (ts *testServer) remember(s ...string) {
	ts.secretsMu.Lock()
	ts.secrets = append(ts.secrets, s...)
	ts.secretsMu.Unlock()
}

// checkLogs fails the test if any secret the test handled reached the logs.
func (ts *testServer) checkLogs() {
	logs := ts.Logs.String()
	ts.secretsMu.Lock()
	defer ts.secretsMu.Unlock()
	for _, s := range ts.secrets {
		if s != "" && strings.Contains(logs, s) {
			ts.t.Errorf("a secret (%.8s…) appears in the logs", s)
		}
	}
}

// oauth2Config returns a golang.org/x/oauth2 config for a client.
func (ts *testServer) oauth2Config(clientID, secret string, scopes ...string) *oauth2.Config {
	style := oauth2.AuthStyleInHeader
	if secret == "" {
		style = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{
		ClientID: clientID, ClientSecret: secret, RedirectURL: redirect, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: ts.URL + "/authorize", TokenURL: ts.URL + "/token", AuthStyle: style},
	}
}

func (ts *testServer) provider() *oidc.Provider {
	p, err := oidc.NewProvider(context.Background(), ts.URL)
	if err != nil {
		ts.t.Fatal(err)
	}
	return p
}

// signIn runs the browser part of the flow through the real pages and
// returns the redirect to the client.
func (ts *testServer) signIn(b *flow.Browser, authURL, user, pw string) *url.URL {
	ts.t.Helper()
	u, err := b.Authorize(authURL, user, pw)
	if err != nil {
		ts.t.Fatal(err)
	}
	return u
}

func (ts *testServer) browser() *flow.Browser { return flow.NewBrowser(nil, redirect) }

// login gets tokens for user at client through the whole code flow with PKCE.
func (ts *testServer) login(cfg *oauth2.Config, user, pw string) *oauth2.Token {
	ts.t.Helper()
	verifier := oauth2.GenerateVerifier()
	cb := ts.signIn(ts.browser(), cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", "n-0S6_WzA2Mj")), user, pw)
	code := cb.Query().Get("code")
	if code == "" {
		ts.t.Fatalf("no code in redirect %s", cb)
	}
	ts.remember(code)
	tok, err := cfg.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.rememberToken(tok)
	return tok
}

func (ts *testServer) rememberToken(tok *oauth2.Token) {
	ts.remember(tok.AccessToken, tok.RefreshToken)
	if id, ok := tok.Extra("id_token").(string); ok {
		ts.remember(id)
	}
}

// tokenResponse is a raw token endpoint answer.
type tokenResponse struct {
	Status int
	Header http.Header
	Body   map[string]any
}

func (r tokenResponse) str(k string) string { s, _ := r.Body[k].(string); return s }

// post sends a form to path with optional basic auth.
func (ts *testServer) post(path string, form url.Values, user, pass string) tokenResponse {
	ts.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	return ts.do(req)
}

func (ts *testServer) do(req *http.Request) tokenResponse {
	ts.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := tokenResponse{Status: resp.StatusCode, Header: resp.Header}
	if len(b) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &out.Body); err != nil {
			ts.t.Fatalf("bad JSON %q: %v", b, err)
		}
	}
	if rt := out.str("refresh_token"); rt != "" {
		ts.remember(rt, out.str("access_token"), out.str("id_token"))
	}
	return out
}

// refresh posts a refresh grant as the web client.
func (ts *testServer) refresh(rt, clientID, secret string, extra ...string) tokenResponse {
	ts.t.Helper()
	f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	for i := 0; i+1 < len(extra); i += 2 {
		f.Set(extra[i], extra[i+1])
	}
	if secret == "" {
		f.Set("client_id", clientID)
		return ts.post("/token", f, "", "")
	}
	return ts.post("/token", f, clientID, secret)
}

func wantError(t *testing.T, r tokenResponse, status int, code string) {
	t.Helper()
	if r.Status != status || r.str("error") != code {
		t.Fatalf("got %d %v, want %d %s", r.Status, r.Body, status, code)
	}
	if r.str("error_description") == "" {
		t.Errorf("error %s without error_description", code)
	}
}
