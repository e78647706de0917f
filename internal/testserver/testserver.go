// Package testserver starts a real Latchkey server on a real store for
// tests: over HTTP, with a movable Clock, captured logs, demo users and
// clients, and helpers for driving flows with golang.org/x/oauth2.
package testserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
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

// Clock is a test Clock that can be moved forward.
type Clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// SyncBuffer collects log output from concurrent handlers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Server is a running Latchkey on a real store, reached over HTTP.
type Server struct {
	t      *testing.T
	URL    string
	Store  store.Store
	Clock  *Clock
	Logs   *SyncBuffer
	Config config.Config
	// MasterKey is the server's master key; Log its logger.
	MasterKey []byte
	Log       *slog.Logger
	// Srv is the running server (its family service and key manager).
	Srv *server.Server
	// secrets collects every token, code, secret and password the test saw,
	// so the cleanup can check none reached a log line.
	secretsMu sync.Mutex
	secrets   []string
}

const (
	WebClient   = "web-app"
	WebSecret   = "web-app-secret-0123456789abcdefghijklmnop"
	ShortClient = "short-secret-app"
	ShortSecret = "s3cret-pw" // under secret.LongSecret: stored with argon2id
	SPAClient   = "spa-app"
	OtherClient = "other-app"
	OtherSecret = "other-app-secret-0123456789abcdefghijklmn"
	Alice       = "Alice"
	AlicePW     = "correct horse battery staple"
	Bob         = "Bob"
	BobPW       = "Bob's long password"
	Redirect    = "http://localhost:9999/callback"
)

// Option changes how a test server starts.
type Option func(*settings)

type settings struct {
	cfg    config.Config
	master []byte
	opts   func(*server.Options)
	wrap   func(h http.Handler, issuer string) http.Handler
	noSeed bool
	clock  *Clock
}

// WithConfig edits the configuration.
func WithConfig(fn func(*config.Config)) Option { return func(s *settings) { fn(&s.cfg) } }

// WithServerOptions edits the server.Options (metrics, audit observers).
func WithServerOptions(fn func(*server.Options)) Option { return func(s *settings) { s.opts = fn } }

// WithMasterKey sets the master key (several instances on one database must
// share it).
func WithMasterKey(k []byte) Option { return func(s *settings) { s.master = k } }

// WithWrap wraps the server's handler (e.g. demo.Mount).
func WithWrap(fn func(h http.Handler, issuer string) http.Handler) Option {
	return func(s *settings) { s.wrap = fn }
}

// WithoutSeed skips creating the test users and clients (a second instance
// on a database that already has them).
func WithoutSeed() Option { return func(s *settings) { s.noSeed = true } }

// WithClock makes the server use c (several instances behind one load
// balancer share the time: grace windows, expiry and key reloads must move
// together when a test advances it).
func WithClock(c *Clock) Option { return func(s *settings) { s.clock = c } }

// Start starts a server on a fresh SQLite database with two users and four
// clients.
func Start(t *testing.T, opts ...Option) *Server {
	t.Helper()
	return StartOn(t, testdb.SQLite(t), opts...)
}

// StartOn starts a server on st.
func StartOn(t *testing.T, st store.Store, opts ...Option) *Server {
	t.Helper()
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &Server{t: t, URL: "http://" + ln.Addr().String(), Store: st, Clock: &Clock{}, Logs: &SyncBuffer{}}
	set := settings{cfg: config.Default()}
	set.cfg.Issuer = ts.URL
	set.cfg.Dev = true
	for _, o := range opts {
		o(&set)
	}
	if set.clock != nil {
		ts.Clock = set.clock
	}
	if set.master == nil {
		set.master = make([]byte, 32)
		_, _ = rand.Read(set.master)
	}
	cfg := set.cfg
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ts.Config, ts.MasterKey = cfg, set.master
	log := slog.New(slog.NewJSONHandler(ts.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	so := server.Options{Store: st, MasterKey: set.master, Log: log, Now: ts.Clock.Now}
	if set.opts != nil {
		set.opts(&so)
	}
	srv, err := server.New(ctx, cfg, so)
	if err != nil {
		t.Fatal(err)
	}
	ts.Log, ts.Srv = log, srv
	var h http.Handler = srv.Handler()
	if set.wrap != nil {
		h = set.wrap(h, ts.URL)
	}
	// The server `latchkey serve` runs: on Linux the arrival-order one
	// (server.NewPublicServer), so every end-to-end test goes through it.
	hs := server.NewPublicServer(cfg, h, log)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hs.Shutdown(ctx); err != nil {
			t.Errorf("test server shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("test server: %v", err)
		}
	})
	if !set.noSeed {
		Seed(t, st)
	}
	t.Cleanup(ts.checkLogs)
	ts.Remember(WebSecret, ShortSecret, OtherSecret, AlicePW, BobPW)
	return ts
}

// Seed creates the test users and clients in st.
func Seed(t *testing.T, st store.Store) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, c := range []operator.ClientSpec{
		{ID: WebClient, Name: "Web App", Secret: WebSecret, RedirectURIs: []string{Redirect}},
		{ID: ShortClient, Name: "Short Secret App", Secret: ShortSecret, RedirectURIs: []string{Redirect}},
		{ID: SPAClient, Name: "SPA", Public: true, RedirectURIs: []string{Redirect}},
		{ID: OtherClient, Name: "Other App", Secret: OtherSecret, RedirectURIs: []string{Redirect}},
	} {
		if _, err := operator.CreateClient(ctx, st, c, now); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []operator.UserSpec{{Username: Alice, Password: AlicePW, Name: "Alice Liddell", Email: "alice@example.com"}, {Username: Bob, Password: BobPW}} {
		if _, err := operator.CreateUser(ctx, st, u, now); err != nil {
			t.Fatal(err)
		}
	}
}

func (ts *Server) Remember(s ...string) {
	ts.secretsMu.Lock()
	ts.secrets = append(ts.secrets, s...)
	ts.secretsMu.Unlock()
}

// checkLogs fails the test if any secret the test handled reached the logs.
func (ts *Server) checkLogs() {
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
func (ts *Server) OAuth2Config(clientID, secret string, scopes ...string) *oauth2.Config {
	style := oauth2.AuthStyleInHeader
	if secret == "" {
		style = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{
		ClientID: clientID, ClientSecret: secret, RedirectURL: Redirect, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: ts.URL + "/authorize", TokenURL: ts.URL + "/token", AuthStyle: style},
	}
}

func (ts *Server) Provider() *oidc.Provider {
	p, err := oidc.NewProvider(context.Background(), ts.URL)
	if err != nil {
		ts.t.Fatal(err)
	}
	return p
}

// signIn runs the browser part of the flow through the real pages and
// returns the Redirect to the client.
func (ts *Server) SignIn(b *flow.Browser, authURL, user, pw string) *url.URL {
	ts.t.Helper()
	u, err := b.Authorize(authURL, user, pw)
	if err != nil {
		ts.t.Fatal(err)
	}
	return u
}

func (ts *Server) Browser() *flow.Browser { return flow.NewBrowser(nil, Redirect) }

// login gets tokens for user at client through the whole code flow with PKCE.
func (ts *Server) Login(cfg *oauth2.Config, user, pw string) *oauth2.Token {
	ts.t.Helper()
	verifier := oauth2.GenerateVerifier()
	cb := ts.SignIn(ts.Browser(), cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", "n-0S6_WzA2Mj")), user, pw)
	code := cb.Query().Get("code")
	if code == "" {
		ts.t.Fatalf("no code in Redirect %s", cb)
	}
	ts.Remember(code)
	tok, err := cfg.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.RememberToken(tok)
	return tok
}

func (ts *Server) RememberToken(tok *oauth2.Token) {
	ts.Remember(tok.AccessToken, tok.RefreshToken)
	if id, ok := tok.Extra("id_token").(string); ok {
		ts.Remember(id)
	}
}

// Response is a raw token endpoint answer.
type Response struct {
	Status int
	Header http.Header
	Body   map[string]any
}

func (r Response) Str(k string) string { s, _ := r.Body[k].(string); return s }

// post sends a form to path with optional basic auth.
func (ts *Server) Post(path string, form url.Values, user, pass string) Response {
	ts.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	return ts.Do(req)
}

func (ts *Server) Do(req *http.Request) Response {
	ts.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := Response{Status: resp.StatusCode, Header: resp.Header}
	if len(b) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &out.Body); err != nil {
			ts.t.Fatalf("bad JSON %q: %v", b, err)
		}
	}
	if rt := out.Str("refresh_token"); rt != "" {
		ts.Remember(rt, out.Str("access_token"), out.Str("id_token"))
	}
	return out
}

// refresh posts a refresh grant as the web client.
func (ts *Server) Refresh(rt, clientID, secret string, extra ...string) Response {
	ts.t.Helper()
	f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	for i := 0; i+1 < len(extra); i += 2 {
		f.Set(extra[i], extra[i+1])
	}
	if secret == "" {
		f.Set("client_id", clientID)
		return ts.Post("/token", f, "", "")
	}
	return ts.Post("/token", f, clientID, secret)
}

func WantError(t *testing.T, r Response, status int, code string) {
	t.Helper()
	if r.Status != status || r.Str("error") != code {
		t.Fatalf("got %d %v, want %d %s", r.Status, r.Body, status, code)
	}
	if r.Str("error_description") == "" {
		t.Errorf("error %s without error_description", code)
	}
}
