// Package app is an example web application that signs its users in with
// Latchkey, written the way we recommend a server-side application
// (a "confidential client") to do it:
//
//   - the authorization code flow with PKCE (S256), state and nonce, through
//     golang.org/x/oauth2; the ID token is verified with
//     github.com/coreos/go-oidc/v3, and the iss parameter (RFC 9207) checked;
//   - the refresh token stays on the app's backend, sealed with AES-256-GCM;
//     the browser gets only an opaque random session id, in an HttpOnly,
//     SameSite=Lax cookie;
//   - the access token is refreshed shortly before it expires, with at most
//     one refresh in flight per session (concurrent requests of one session
//     wait for it and share its result), and the rotated refresh token is
//     stored before the new access token is used;
//   - the profile comes from Latchkey's userinfo endpoint;
//   - when Latchkey refuses the refresh (invalid_grant, with error_reason
//     telling why: the user revoked the app, the token was reused, ...), the
//     app ends the session and tells the user why.
//
// Sessions live in memory (MemoryStore) by default: fine for an example,
// gone on restart. See examples/webapp/README.md.
package app

import (
	"cmp"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"
)

// Config configures the app.
type Config struct {
	// Issuer is Latchkey's issuer URL (discovery is read from it at start).
	Issuer string
	// ClientID and ClientSecret are the app's registration at Latchkey
	// (`latchkey client create`).
	ClientID, ClientSecret string
	// RedirectURL is the app's /callback URL, exactly as registered.
	RedirectURL string
	// SessionKey (32 bytes) seals the tokens at rest with AES-256-GCM.
	SessionKey []byte

	// RefreshBefore: the access token is refreshed when less than this is
	// left of its lifetime. Default 60s.
	RefreshBefore time.Duration
	// SessionTTL is how long an app session (and its cookie) lasts at most.
	// Default 7 days. The refresh token's own lifetimes at Latchkey may end
	// it sooner.
	SessionTTL time.Duration
	// Sessions stores the sessions; nil means a new MemoryStore.
	Sessions Store
	// HTTPClient calls Latchkey; nil means a client with a 10s timeout.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives the app's log lines (never a token); nil discards them.
	Log *slog.Logger
}

// Scopes the app asks for. offline_access is what gets it a refresh token.
var Scopes = []string{oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess}

// App is the example application. Its Handler serves:
//
//	GET  /          home: the profile when signed in, else a sign-in link
//	GET  /login     starts the sign-in (redirects to Latchkey)
//	GET  /callback  Latchkey's redirect back: code exchange, ID token check
//	POST /logout    revokes the refresh token at Latchkey, ends the session
type App struct {
	cfg      Config
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
	client   *http.Client
	sessions Store
	seal     *sealer
	log      *slog.Logger
	now      func() time.Time

	userinfoURL, revocationURL, accountURL string
	secureCookies                          bool
	sessionCookie, loginCookie             string

	// flight runs at most one refresh per session at a time.
	flight singleflight.Group

	loginsMu sync.Mutex
	logins   map[string]pendingLogin // storeKey(login cookie) → pending sign-in
}

// pendingLogin is a sign-in between /login and /callback.
type pendingLogin struct {
	state, nonce, verifier string
	expires                time.Time
}

const (
	defaultRefreshBefore = 60 * time.Second
	defaultSessionTTL    = 7 * 24 * time.Hour
	loginTTL             = 10 * time.Minute
	maxPendingLogins     = 10000
	// refreshTimeout bounds one refresh. The refresh does not stop when the
	// request that started it goes away: other requests may be waiting for
	// it, and a refresh abandoned after Latchkey rotated the token would
	// leave the stored one a generation behind.
	refreshTimeout = 15 * time.Second
)

// New discovers Latchkey's endpoints at cfg.Issuer and returns the app.
func New(ctx context.Context, cfg Config) (*App, error) {
	var missing []string
	for name, v := range map[string]string{"issuer": cfg.Issuer, "client id": cfg.ClientID, "client secret": cfg.ClientSecret, "redirect URL": cfg.RedirectURL} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("app: missing configuration: %s", strings.Join(missing, ", "))
	}
	redirect, err := url.Parse(cfg.RedirectURL)
	if err != nil || !redirect.IsAbs() {
		return nil, fmt.Errorf("app: the redirect URL %q is not an absolute URL", cfg.RedirectURL)
	}
	seal, err := newSealer(cfg.SessionKey)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	if cfg.RefreshBefore <= 0 {
		cfg.RefreshBefore = defaultRefreshBefore
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = defaultSessionTTL
	}
	if cfg.Sessions == nil {
		cfg.Sessions = NewMemoryStore()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, cfg.HTTPClient), cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("app: discover Latchkey at %s: %w", cfg.Issuer, err)
	}
	var meta struct {
		Revocation string `json:"revocation_endpoint"`
	}
	if err := provider.Claims(&meta); err != nil {
		return nil, fmt.Errorf("app: discovery document: %w", err)
	}
	ep := provider.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInHeader // client_secret_basic
	a := &App{
		cfg: cfg,
		oauth: &oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURL,
			Endpoint: ep, Scopes: Scopes,
		},
		verifier:      provider.Verifier(&oidc.Config{ClientID: cfg.ClientID, Now: cfg.Now}),
		client:        cfg.HTTPClient,
		sessions:      cfg.Sessions,
		seal:          seal,
		log:           cfg.Log,
		now:           cfg.Now,
		userinfoURL:   provider.UserInfoEndpoint(),
		revocationURL: meta.Revocation,
		accountURL:    strings.TrimRight(cfg.Issuer, "/") + "/account",
		secureCookies: redirect.Scheme == "https",
		logins:        map[string]pendingLogin{},
	}
	// Over https the cookies get the __Host- prefix: Secure, Path=/, no
	// Domain, so no other host or path can set or shadow them.
	a.sessionCookie, a.loginCookie = "webapp_session", "webapp_login"
	if a.secureCookies {
		a.sessionCookie, a.loginCookie = "__Host-"+a.sessionCookie, "__Host-"+a.loginCookie
	}
	return a, nil
}

// SessionCookie is the name of the session cookie.
func (a *App) SessionCookie() string { return a.sessionCookie }

// Handler serves the app.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("GET /login", a.login)
	mux.HandleFunc("GET /callback", a.callback)
	mux.Handle("POST /logout", http.NewCrossOriginProtection().Handler(http.HandlerFunc(a.logout)))
	mux.HandleFunc("GET /app.css", serveCSS)
	return mux
}

func (a *App) ctx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, a.client)
}

func (a *App) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: a.secureCookies, SameSite: http.SameSiteLaxMode}
	if maxAge > 0 {
		c.MaxAge = int(maxAge / time.Second)
	} else {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

// login starts a sign-in: fresh state, nonce and PKCE verifier, kept on the
// backend under a random login cookie, and a redirect to Latchkey.
func (a *App) login(w http.ResponseWriter, r *http.Request) {
	id := newID()
	p := pendingLogin{state: newID(), nonce: newID(), verifier: oauth2.GenerateVerifier(), expires: a.now().Add(loginTTL)}
	a.loginsMu.Lock()
	now := a.now()
	for k, v := range a.logins {
		if now.After(v.expires) {
			delete(a.logins, k)
		}
	}
	full := len(a.logins) >= maxPendingLogins
	if !full {
		a.logins[storeKey(id)] = p
	}
	a.loginsMu.Unlock()
	if full {
		a.render(w, http.StatusServiceUnavailable, page{Error: "Too many sign-ins are in progress. Try again in a few minutes."})
		return
	}
	a.setCookie(w, a.loginCookie, id, loginTTL)
	http.Redirect(w, r, a.oauth.AuthCodeURL(p.state, oauth2.S256ChallengeOption(p.verifier), oauth2.SetAuthURLParam("nonce", p.nonce)), http.StatusFound)
}

// takeLogin returns and forgets the browser's pending sign-in.
func (a *App) takeLogin(r *http.Request) (pendingLogin, bool) {
	c, err := r.Cookie(a.loginCookie)
	if err != nil {
		return pendingLogin{}, false
	}
	k := storeKey(c.Value)
	a.loginsMu.Lock()
	defer a.loginsMu.Unlock()
	p, ok := a.logins[k]
	delete(a.logins, k) // single use, whatever happens next
	if !ok || a.now().After(p.expires) {
		return pendingLogin{}, false
	}
	return p, true
}

// callback finishes the sign-in: checks state and iss, exchanges the code
// with the PKCE verifier, verifies the ID token and its nonce, and starts a
// session that holds the tokens.
func (a *App) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p, ok := a.takeLogin(r)
	a.setCookie(w, a.loginCookie, "", 0)
	if !ok {
		a.render(w, http.StatusBadRequest, page{Error: "This sign-in expired or was not started here. Sign in again."})
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(p.state)) != 1 {
		a.render(w, http.StatusBadRequest, page{Error: "The sign-in response did not match the request (state). Sign in again."})
		return
	}
	// RFC 9207: the response names its issuer; a mismatch is a mix-up attack.
	if iss := q.Get("iss"); iss != "" && iss != a.cfg.Issuer {
		a.render(w, http.StatusBadRequest, page{Error: "The sign-in response came from another server. Sign in again."})
		return
	}
	if e := q.Get("error"); e != "" {
		msg := "Sign-in did not complete (" + e + ")."
		if e == "access_denied" {
			msg = "You did not allow access, so you are not signed in."
		}
		a.render(w, http.StatusOK, page{Error: msg})
		return
	}
	ctx := a.ctx(r.Context())
	issued := a.now()
	tok, err := a.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(p.verifier))
	if err != nil {
		a.log.Warn("code exchange failed", slog.String("error", oauthError(err)))
		a.render(w, http.StatusBadGateway, page{Error: "Latchkey did not accept the sign-in (" + oauthError(err) + "). Sign in again."})
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := a.verifier.Verify(ctx, raw)
	if err != nil {
		a.log.Warn("ID token rejected", slog.Any("error", err))
		a.render(w, http.StatusBadGateway, page{Error: "The ID token from Latchkey did not verify. Sign in again."})
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(p.nonce)) != 1 {
		a.render(w, http.StatusBadRequest, page{Error: "The ID token was not issued for this sign-in (nonce). Sign in again."})
		return
	}
	if tok.RefreshToken == "" {
		a.render(w, http.StatusBadGateway, page{Error: "Latchkey issued no refresh token: is offline_access allowed for this client?"})
		return
	}
	var claims struct {
		Name     string `json:"name"`
		Username string `json:"preferred_username"`
	}
	_ = idt.Claims(&claims)
	// A new session id at every sign-in (no session fixation); the old
	// session of this browser, if any, ends.
	if old, err := r.Cookie(a.sessionCookie); err == nil {
		_ = a.sessions.Delete(r.Context(), storeKey(old.Value))
	}
	id := newID()
	key := storeKey(id)
	now := a.now()
	s := &Session{
		Subject: idt.Subject, Name: cmp.Or(claims.Name, claims.Username, idt.Subject),
		CreatedAt: now, ExpiresAt: now.Add(a.cfg.SessionTTL),
	}
	a.putTokens(key, s, tok, issued)
	if err := a.sessions.Create(r.Context(), key, s); err != nil {
		a.log.Error("store session", slog.Any("error", err))
		a.render(w, http.StatusInternalServerError, page{Error: "The app could not store your session. Try again."})
		return
	}
	a.setCookie(w, a.sessionCookie, id, a.cfg.SessionTTL)
	// Post/redirect/get: the URL with the (spent) code does not stay the
	// current page.
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// putTokens seals tok's tokens into s. issued is when the request for tok
// was sent: expires_in counts from about then, by the app's clock.
func (a *App) putTokens(key string, s *Session, tok *oauth2.Token, issued time.Time) {
	s.AccessToken = a.seal.seal(key, "access", tok.AccessToken)
	if tok.RefreshToken != "" {
		s.RefreshToken = a.seal.seal(key, "refresh", tok.RefreshToken)
	}
	switch {
	case tok.ExpiresIn > 0:
		s.AccessExpiry = issued.Add(time.Duration(tok.ExpiresIn) * time.Second)
	case !tok.Expiry.IsZero():
		s.AccessExpiry = tok.Expiry
	default: // no lifetime given: rely on the 401 from userinfo
		s.AccessExpiry = issued.Add(a.cfg.SessionTTL)
	}
}

// currentSession returns the browser's session (and its store key), or
// nil if it has none or it ended.
func (a *App) currentSession(r *http.Request) (string, *Session) {
	c, err := r.Cookie(a.sessionCookie)
	if err != nil || c.Value == "" {
		return "", nil
	}
	key := storeKey(c.Value)
	s, err := a.sessions.Get(r.Context(), key)
	if err != nil {
		return "", nil
	}
	if !a.now().Before(s.ExpiresAt) {
		_ = a.sessions.Delete(r.Context(), key)
		return "", nil
	}
	return key, s
}

func (a *App) home(w http.ResponseWriter, r *http.Request) {
	key, s := a.currentSession(r)
	if s == nil {
		p := page{}
		if _, err := r.Cookie(a.sessionCookie); err == nil {
			a.setCookie(w, a.sessionCookie, "", 0) // a stale cookie: drop it
		}
		if r.URL.Query().Get("signed_out") == "1" {
			p.Notice = "You are signed out of the example app."
		}
		a.render(w, http.StatusOK, p)
		return
	}
	info, s2, err := a.profile(r.Context(), key)
	var ended *SessionEndedError
	switch {
	case errors.As(err, &ended):
		a.setCookie(w, a.sessionCookie, "", 0)
		a.render(w, http.StatusOK, page{Revoked: ended.Message()})
	case err != nil:
		a.log.Warn("load profile", slog.Any("error", err))
		a.render(w, http.StatusBadGateway, page{Error: "Latchkey could not be reached just now; your session is kept. Reload the page to try again."})
	default:
		a.render(w, http.StatusOK, a.profilePage(s2, info))
	}
}

// logout revokes the refresh token at Latchkey (RFC 7009) — which ends the
// whole token family there — and ends the app's session. It does not end
// the user's session at Latchkey itself.
func (a *App) logout(w http.ResponseWriter, r *http.Request) {
	if key, s := a.currentSession(r); s != nil {
		if rt, err := a.seal.open(key, "refresh", s.RefreshToken); err == nil {
			if err := a.revoke(a.ctx(r.Context()), rt); err != nil {
				a.log.Warn("revoke refresh token", slog.Any("error", err))
			}
		}
		_ = a.sessions.Delete(r.Context(), key)
	}
	a.setCookie(w, a.sessionCookie, "", 0)
	http.Redirect(w, r, "/?signed_out=1", http.StatusSeeOther)
}
