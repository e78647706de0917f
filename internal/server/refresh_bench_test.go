package server_test

// BenchmarkRefresh is one whole refresh grant through the real handler
// stack (middleware, client authentication, rotation, audit, signing, JSON),
// in process: no network, no HTTP parsing of the wire format. Together with
// the component benchmarks (internal/token, internal/keys, internal/secret,
// internal/store/sqlstore) it is the floor of one refresh. Run with
//
//	go test -run '^$' -bench Refresh -benchmem ./internal/server
//
// and profile it with -cpuprofile. docs/BENCHMARKS.md has the figures.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/flow"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/server"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/testdb"
)

const (
	benchIssuer   = "http://127.0.0.1:8080"
	benchClient   = "bench"
	benchSecret   = "bench-secret-0123456789abcdefghijklmnopqrstuv" // >= 32 chars: SHA-256 fast path
	benchUser     = "bench"
	benchPassword = "bench password, long enough"
	benchRedirect = "http://localhost:9999/callback"
)

// inProcess is an http.RoundTripper that calls a handler directly, so the
// sign-in flow and golang.org/x/oauth2 run against the server without a
// network.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	sr := req.Clone(req.Context())
	sr.RequestURI = req.URL.RequestURI()
	sr.RemoteAddr = "127.0.0.1:40000"
	if sr.Host == "" {
		sr.Host = req.URL.Host
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, sr)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// benchServer starts a server on st signing with alg, seeds a client and a
// user, and returns its handler and one refresh token obtained through the
// real sign-in and consent pages.
func benchServer(b *testing.B, st store.Store, alg string) (http.Handler, string) {
	b.Helper()
	ctx := context.Background()
	cfg := config.Default()
	cfg.Issuer, cfg.SigningAlg = benchIssuer, alg
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	// As in production: JSON logs at info level (an access log line and an
	// audit line per refresh), written nowhere.
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := server.New(ctx, cfg, server.Options{Store: st, MasterKey: master, Log: log})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	if _, err := operator.CreateClient(ctx, st, operator.ClientSpec{ID: benchClient, Name: "Bench", Secret: benchSecret, RedirectURIs: []string{benchRedirect}}, now); err != nil {
		b.Fatal(err)
	}
	if _, err := operator.CreateUser(ctx, st, operator.UserSpec{Username: benchUser, Password: benchPassword}, now); err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	hc := &http.Client{Transport: inProcess{h}}
	oc := &oauth2.Config{
		ClientID: benchClient, ClientSecret: benchSecret, RedirectURL: benchRedirect, Scopes: []string{"openid", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: benchIssuer + "/authorize", TokenURL: benchIssuer + "/token", AuthStyle: oauth2.AuthStyleInHeader},
	}
	verifier := oauth2.GenerateVerifier()
	cb, err := flow.NewBrowser(hc, benchRedirect).Authorize(oc.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), benchUser, benchPassword)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := oc.Exchange(context.WithValue(ctx, oauth2.HTTPClient, hc), cb.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		b.Fatal(err)
	}
	if tok.RefreshToken == "" {
		b.Fatal("no refresh token")
	}
	return h, tok.RefreshToken
}

func BenchmarkRefresh(b *testing.B) {
	engines := []struct {
		name string
		open func(*testing.B) store.Store
	}{
		{"sqlite", func(b *testing.B) store.Store { return testdb.SQLite(b) }},
		{"postgres", func(b *testing.B) store.Store { return testdb.DurablePostgres(b) }},
	}
	for _, e := range engines {
		for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
			b.Run(e.name+"/"+alg, func(b *testing.B) {
				h, rt := benchServer(b, e.open(b), alg)
				auth := "Basic " + basic(benchClient, benchSecret)
				b.ReportAllocs()
				cpu0 := cpuTime()
				for b.Loop() {
					req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader("grant_type=refresh_token&refresh_token="+rt))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.Header.Set("Authorization", auth)
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					var resp struct {
						RefreshToken string `json:"refresh_token"`
					}
					if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &resp) != nil || resp.RefreshToken == "" {
						b.Fatalf("refresh: %d %s", rec.Code, rec.Body)
					}
					rt = resp.RefreshToken
				}
				reportCPU(b, cpu0)
			})
		}
	}
}

func basic(id, secret string) string {
	r := &http.Request{Header: http.Header{}}
	r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

// reportCPU adds the process's CPU time per operation (user + system, all
// goroutines, from getrusage) to the benchmark's output as cpu-ns/op. On a
// shared machine it is steadier than ns/op, which also counts the time the
// benchmark waited for a core; call it after the timed loop.
func reportCPU(b *testing.B, start time.Duration) {
	if b.N > 0 {
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
