// Package demo is dev mode's built-in demo: it seeds a demo user and demo
// clients, and serves a tiny relying party at /demo that signs in through
// the real authorization endpoint, exchanges the code, and refreshes with
// rotation, so a newcomer can watch the whole flow in a browser. It is
// mounted only with --dev. Unlike the server proper it keeps its relying
// party state (the refresh token) in process memory: it plays the part of
// an application's backend.
package demo

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/web"
)

// Demo credentials (dev mode only; printed at start-up).
const (
	Username        = "demo"
	Password        = "demo-password"
	WebClientID     = "demo-web"
	WebClientSecret = "demo-web-secret-for-local-development-only"
	SPAClientID     = "demo-spa"
)

// Seeded describes the demo data.
type Seeded struct {
	Username, Password, WebClientID, WebClientSecret, SPAClientID string
}

// Seed creates the demo user and clients if they are missing.
func Seed(ctx context.Context, st store.Store, issuer string) (*Seeded, error) {
	issuer = strings.TrimRight(issuer, "/")
	now := time.Now().UTC().Truncate(time.Millisecond)
	if _, err := st.GetUserByUsername(ctx, Username); errors.Is(err, store.ErrNotFound) {
		if _, err := operator.CreateUser(ctx, st, operator.UserSpec{Username: Username, Password: Password, Name: "Demo User", Email: "demo@example.com"}, now); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	clients := []operator.ClientSpec{
		{ID: WebClientID, Name: "Demo Web App", Secret: WebClientSecret, RedirectURIs: []string{issuer + "/demo/callback", "http://localhost:3000/callback"}},
		{ID: SPAClientID, Name: "Demo Single-Page App", Public: true, RedirectURIs: []string{"http://localhost:3000/callback", "http://127.0.0.1:3000/callback"}},
	}
	for _, c := range clients {
		if _, err := st.GetClient(ctx, c.ID); errors.Is(err, store.ErrNotFound) {
			if _, err := operator.CreateClient(ctx, st, c, now); err != nil {
				return nil, err
			}
		} else if err != nil {
			return nil, err
		}
	}
	return &Seeded{Username, Password, WebClientID, WebClientSecret, SPAClientID}, nil
}

// app is the demo relying party.
type app struct {
	next   http.Handler
	oauth  *oauth2.Config
	client *http.Client
	log    *slog.Logger

	mu       sync.Mutex
	sessions map[string]*oauth2.Token // demo session id → tokens (the app's backend)
}

// Mount returns next with the demo app mounted at /demo. The app talks to
// the token endpoint in-process, so it works whatever the issuer's host.
func Mount(next http.Handler, issuer string, log *slog.Logger) http.Handler {
	issuer = strings.TrimRight(issuer, "/")
	a := &app{next: next, log: log, sessions: map[string]*oauth2.Token{}}
	a.client = &http.Client{Transport: inProcess{next}, Timeout: 10 * time.Second}
	a.oauth = &oauth2.Config{
		ClientID: WebClientID, ClientSecret: WebClientSecret, RedirectURL: issuer + "/demo/callback",
		Endpoint: oauth2.Endpoint{AuthURL: issuer + "/authorize", TokenURL: issuer + "/token", AuthStyle: oauth2.AuthStyleInHeader},
		Scopes:   []string{"openid", "profile", "email", "offline_access"},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /demo", a.home)
	mux.HandleFunc("GET /demo/start", a.start)
	mux.HandleFunc("GET /demo/callback", a.callback)
	// The refresh form is a state-changing POST: refuse cross-origin posts.
	mux.Handle("POST /demo/refresh", http.NewCrossOriginProtection().Handler(http.HandlerFunc(a.refresh)))
	mux.Handle("/", next)
	return mux
}

// inProcess sends requests straight to the server's handler.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	r2 := r.Clone(r.Context())
	r2.RequestURI = r.URL.RequestURI()
	t.h.ServeHTTP(rec, r2)
	return rec.Result(), nil
}

func random() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func setCookie(w http.ResponseWriter, name, value string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/demo", HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: 3600})
}

func (a *app) home(w http.ResponseWriter, r *http.Request) {
	if tok := a.session(r); tok != nil {
		msg := "Signed in. The app holds these tokens:"
		if r.URL.Query().Get("refreshed") == "1" {
			msg = "Refreshed without asking you again. The refresh token rotated:"
		}
		a.render(w, describe(tok, msg))
		return
	}
	v := view{}
	if e := r.URL.Query().Get("error"); e != "" && len(e) < 500 {
		v.Error = e
	}
	a.render(w, v)
}

// session returns the tokens of the browser's demo session, if any.
func (a *app) session(r *http.Request) *oauth2.Token {
	c, err := r.Cookie("demo_session")
	if err != nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sessions[c.Value]
}

func (a *app) start(w http.ResponseWriter, r *http.Request) {
	state, verifier := random(), oauth2.GenerateVerifier()
	setCookie(w, "demo_state", state)
	setCookie(w, "demo_verifier", verifier)
	http.Redirect(w, r, a.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", random())), http.StatusFound)
}

func (a *app) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		a.render(w, view{Error: e + ": " + q.Get("error_description")})
		return
	}
	st, err1 := r.Cookie("demo_state")
	ver, err2 := r.Cookie("demo_verifier")
	// The state is a CSRF secret: compare it in constant time.
	if err1 != nil || err2 != nil || subtle.ConstantTimeCompare([]byte(st.Value), []byte(q.Get("state"))) != 1 {
		a.render(w, view{Error: "The state did not match; start again."})
		return
	}
	ctx := context.WithValue(r.Context(), oauth2.HTTPClient, a.client)
	tok, err := a.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(ver.Value))
	if err != nil {
		a.render(w, view{Error: "Code exchange failed: " + err.Error()})
		return
	}
	id := random()
	a.mu.Lock()
	a.sessions[id] = tok
	a.mu.Unlock()
	setCookie(w, "demo_session", id)
	// Post/redirect/get: the callback URL (with its single-use code) does
	// not stay in the history as the current page.
	http.Redirect(w, r, "/demo", http.StatusSeeOther)
}

func (a *app) refresh(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie("demo_session")
	tok := a.session(r)
	if err != nil || tok == nil {
		http.Redirect(w, r, "/demo?error="+url.QueryEscape("No demo session; sign in first."), http.StatusSeeOther)
		return
	}
	ctx := context.WithValue(r.Context(), oauth2.HTTPClient, a.client)
	// Force a refresh: an expired copy makes the token source call /token.
	old := *tok
	old.Expiry = time.Now().Add(-time.Hour)
	nt, err := a.oauth.TokenSource(ctx, &old).Token()
	if err != nil {
		a.mu.Lock()
		delete(a.sessions, c.Value)
		a.mu.Unlock()
		http.Redirect(w, r, "/demo?error="+url.QueryEscape("Refresh failed, so the app signed you out: "+refreshError(err)), http.StatusSeeOther)
		return
	}
	a.mu.Lock()
	a.sessions[c.Value] = nt
	a.mu.Unlock()
	http.Redirect(w, r, "/demo?refreshed=1", http.StatusSeeOther)
}

// refreshError summarises a failed refresh: the OAuth error and reason.
func refreshError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
			Reason      string `json:"error_reason"`
		}
		if json.Unmarshal(re.Body, &body) == nil && body.Error != "" {
			return fmt.Sprintf("%s (%s): %s", body.Error, body.Reason, body.Description)
		}
	}
	return "the token endpoint could not be reached"
}

type view struct {
	Message   string
	Error     string
	Rows      [][2]string
	IDClaims  string
	SignedIn  bool
	AccessExp string
}

func describe(tok *oauth2.Token, msg string) view {
	v := view{Message: msg, SignedIn: true}
	// Show a fingerprint, never the token: enough to see it change.
	fingerprint := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "sha256:" + hex.EncodeToString(sum[:6])
	}
	v.Rows = append(v.Rows, [2]string{"access_token", fingerprint(tok.AccessToken)}, [2]string{"expires", tok.Expiry.UTC().Format(web.DateLayout)})
	if tok.RefreshToken != "" {
		v.Rows = append(v.Rows, [2]string{"refresh_token", fingerprint(tok.RefreshToken) + " (kept on the app's backend only)"})
	}
	if x, ok := tok.Extra("refresh_token_expires_in").(float64); ok {
		v.Rows = append(v.Rows, [2]string{"refresh_token_expires_in", fmt.Sprintf("%.0f s", x)})
	}
	if x, ok := tok.Extra("refresh_token_absolute_expires_at").(float64); ok {
		v.Rows = append(v.Rows, [2]string{"refresh_token_absolute_expires_at", time.Unix(int64(x), 0).UTC().Format(web.DateLayout)})
	}
	if x, ok := tok.Extra("scope").(string); ok {
		v.Rows = append(v.Rows, [2]string{"scope", x})
	}
	if idt, ok := tok.Extra("id_token").(string); ok {
		if parts := strings.Split(idt, "."); len(parts) == 3 {
			if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
				var m map[string]any
				if json.Unmarshal(b, &m) == nil {
					pretty, _ := json.MarshalIndent(m, "", "  ")
					v.IDClaims = string(pretty)
				}
			}
		}
	}
	return v
}

var page = template.Must(template.New("demo").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo app · Latchkey</title><link rel="stylesheet" href="/static/style.css"><link rel="icon" type="image/svg+xml" href="/static/favicon.svg"></head>
<body class="page-wide"><div class="shell"><main id="main" class="card">
<h1>Demo web app</h1>
<p class="subtitle">A relying party built into dev mode: it signs you in with Latchkey and keeps a refresh token on its backend.</p>
{{with .Error}}<div class="alert" role="alert"><p>{{.}}</p></div>{{end}}
{{with .Message}}<p role="status">{{.}}</p>{{end}}
{{if .Rows}}<table><tbody>{{range .Rows}}<tr><th scope="row"><code>{{index . 0}}</code></th><td><code>{{index . 1}}</code></td></tr>{{end}}</tbody></table>{{end}}
{{with .IDClaims}}<h2>ID token claims</h2><pre>{{.}}</pre>{{end}}
{{if .SignedIn}}<form method="post" action="/demo/refresh"><button class="btn btn-primary btn-block" type="submit">Refresh now</button></form>
<p><a href="/account" target="_blank" rel="noopener">Revoke the app on your account page</a> (opens a new tab), then come back and press “Refresh now” to see the refresh fail.</p>
{{else}}<p><a class="btn btn-primary btn-block" href="/demo/start">Sign in with Latchkey</a></p>{{end}}
</main></div></body></html>`))

func (a *app) render(w http.ResponseWriter, v view) {
	web.SetSecurityHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := page.Execute(w, v); err != nil {
		a.log.Error("demo page", slog.Any("error", err))
	}
}
