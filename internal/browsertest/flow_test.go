package browsertest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey-dev/latchkey/internal/demo"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/testserver"
)

// Selectors of the server's pages.
const (
	usernameInput = `input[name=username][autocomplete=username]`
	passwordInput = `input[name=password][autocomplete=current-password]`
	signInButton  = `form button[type=submit]`
	allowButton   = `button[name=decision][value=allow]`
	denyButton    = `button[name=decision][value=deny]`
)

// authRequest is one authorization request of the web-app client, built
// with golang.org/x/oauth2 as a real client would.
type authRequest struct {
	cfg                    *oauth2.Config
	state, nonce, verifier string
	url                    string
}

func newAuthRequest(ts *testserver.Server, scopes ...string) authRequest {
	r := authRequest{
		cfg:      ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, scopes...),
		state:    rand.Text(),
		nonce:    rand.Text(),
		verifier: oauth2.GenerateVerifier(),
	}
	r.url = r.cfg.AuthCodeURL(r.state, oauth2.S256ChallengeOption(r.verifier), oauth2.SetAuthURLParam("nonce", r.nonce))
	ts.Remember(r.verifier)
	return r
}

// signIn fills in and submits the sign-in page the tab is on.
func signIn(tb *tab, user, pw string) {
	tb.t.Helper()
	tb.typeInto(usernameInput, user)
	tb.typeInto(passwordInput, pw)
	tb.click(signInButton)
}

// wantLoginPage checks the tab is on the sign-in page for clientName.
func wantLoginPage(t *testing.T, tb *tab, clientName string) {
	t.Helper()
	if got := tb.title(); got != "Sign in · Latchkey" {
		t.Fatalf("title %q on %s, want the sign-in page", got, tb.location())
	}
	tb.mustHave(usernameInput, passwordInput, signInButton, `input[type=hidden][name=csrf_token]`)
	if got := tb.text(".subtitle"); !strings.Contains(got, clientName) {
		t.Errorf("sign-in subtitle %q does not name the client %q", got, clientName)
	}
}

// wantConsentPage checks the tab is on the consent page for clientName and
// returns the text of its list of scopes.
func wantConsentPage(t *testing.T, tb *tab, clientName string) string {
	t.Helper()
	if got := tb.title(); got != "Allow access · Latchkey" {
		t.Fatalf("title %q on %s, want the consent page", got, tb.location())
	}
	if got, want := tb.text("h1"), clientName+" wants to access your account"; got != want {
		t.Errorf("consent heading %q, want %q", got, want)
	}
	tb.mustHave(allowButton, denyButton)
	return tb.text("ul.scopes")
}

func TestBrowserSignInAndConsent(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	tb := newTab(t)
	req := newAuthRequest(ts, oidc.ScopeOpenID, oidc.ScopeOfflineAccess)

	tb.navigate(req.url)
	wantLoginPage(t, tb, "Web App")
	tb.shot("sign-in")
	signIn(tb, testserver.Alice, testserver.AlicePW)

	scopes := wantConsentPage(t, tb, "Web App")
	if !strings.Contains(scopes, "Stay connected") {
		t.Errorf("consent page does not list offline_access (\"Stay connected…\"); the scopes read %q", scopes)
	}
	tb.mustHave(`li.scope-offline`)
	tb.shot("consent")

	// The browser session: HttpOnly, SameSite=Lax, host-only on the issuer.
	sess := tb.cookie(ts.URL, "latchkey_session")
	if !sess.HTTPOnly {
		t.Error("the session cookie is not HttpOnly")
	}
	if sess.SameSite != "Lax" {
		t.Errorf("session cookie SameSite=%q, want Lax", sess.SameSite)
	}
	if sess.Path != "/" {
		t.Errorf("session cookie Path=%q, want /", sess.Path)
	}
	if csrf := tb.cookie(ts.URL, "latchkey_csrf"); !csrf.HTTPOnly {
		t.Error("the CSRF cookie is not HttpOnly")
	}

	tb.click(allowButton)
	cb := tb.callback()
	q := cb.Query()
	if got := cb.Scheme + "://" + cb.Host + cb.Path; got != testserver.Redirect {
		t.Errorf("redirected to %s, want %s", got, testserver.Redirect)
	}
	if q.Get("state") != req.state || q.Get("iss") != ts.URL || q.Get("error") != "" {
		t.Errorf("callback query %v: want state %q, iss %q and no error", q, req.state, ts.URL)
	}
	code := q.Get("code")
	if code == "" {
		t.Fatalf("no code in %s", cb.Redacted())
	}
	ts.Remember(code)

	// The client's side: exchange the code, verify the ID token.
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	tok, err := req.cfg.Exchange(ctx, code, oauth2.VerifierOption(req.verifier))
	if err != nil {
		t.Fatalf("exchange the code from the browser: %v", err)
	}
	ts.RememberToken(tok)
	if tok.RefreshToken == "" {
		t.Error("no refresh token for offline_access")
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("no id_token")
	}
	idt, err := ts.Provider().Verifier(&oidc.Config{ClientID: testserver.WebClient}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify the ID token: %v", err)
	}
	alice, err := ts.Store.GetUserByUsername(ctx, testserver.Alice)
	if err != nil {
		t.Fatal(err)
	}
	if idt.Subject != alice.ID || idt.Nonce != req.nonce || idt.Issuer != ts.URL {
		t.Errorf("ID token sub=%q nonce=%q iss=%q, want %q, %q, %q", idt.Subject, idt.Nonce, idt.Issuer, alice.ID, req.nonce, ts.URL)
	}
	if age := time.Since(idt.IssuedAt); age < -time.Minute || age > time.Minute {
		t.Errorf("ID token iat %v is not now", idt.IssuedAt)
	}
}

func TestBrowserDeny(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	tb := newTab(t)
	req := newAuthRequest(ts, oidc.ScopeOpenID)

	tb.navigate(req.url)
	wantLoginPage(t, tb, "Web App")
	signIn(tb, testserver.Bob, testserver.BobPW)
	wantConsentPage(t, tb, "Web App")
	tb.click(denyButton)

	q := tb.callback().Query()
	if q.Get("error") != "access_denied" || q.Get("state") != req.state || q.Get("iss") != ts.URL {
		t.Errorf("callback query %v: want error=access_denied, state %q, iss %q", q, req.state, ts.URL)
	}
	if q.Has("code") {
		t.Error("a denied request got a code")
	}
}

func TestBrowserWrongPassword(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	tb := newTab(t)
	req := newAuthRequest(ts, oidc.ScopeOpenID)

	tb.navigate(req.url)
	wantLoginPage(t, tb, "Web App")
	const wrong = "not alice's password"
	ts.Remember(wrong)
	// The page comes back with status 401, which Chrome logs as a failed load.
	tb.allowConsole("/login: Failed to load resource: the server responded with a status of 401")
	signIn(tb, testserver.Alice, wrong)

	if got := tb.text(`[role=alert]`); !strings.Contains(got, "incorrect") {
		t.Errorf("alert %q does not say the password is incorrect", got)
	}
	if got := tb.value(usernameInput); got != testserver.Alice {
		t.Errorf("username field %q after a wrong password, want it kept (%q)", got, testserver.Alice)
	}
	if got := tb.value(passwordInput); got != "" {
		t.Error("the wrong password was sent back into the page")
	}
	if !tb.has(passwordInput + `[autofocus]`) {
		t.Error("the password field should have the focus when the username is kept")
	}
	tb.shot("wrong-password")

	// Recover: the right password on the same page goes on to consent.
	tb.typeInto(passwordInput, testserver.AlicePW)
	tb.click(signInButton)
	wantConsentPage(t, tb, "Web App")
}

// TestBrowserDemoApp is what a newcomer does in dev mode: open /demo, sign
// in through the real pages, allow, see the tokens, refresh.
func TestBrowserDemoApp(t *testing.T) {
	t.Parallel()
	var demoLogs testserver.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&demoLogs, nil))
	ts := testserver.Start(t, testserver.WithWrap(func(h http.Handler, issuer string) http.Handler {
		return demo.Mount(h, issuer, logger)
	}))
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	if _, err := demo.Seed(ctx, ts.Store, ts.URL); err != nil {
		t.Fatal(err)
	}
	ts.Remember(demo.Password, demo.WebClientSecret)
	t.Cleanup(func() {
		if s := demoLogs.String(); s != "" {
			t.Errorf("the demo app logged:\n%s", s)
		}
	})
	tb := newTab(t)
	// The demo page links no icon (the server's pages link
	// /static/favicon.svg), so Chrome asks for /favicon.ico and gets a 404.
	tb.allowConsole("/favicon.ico: Failed to load resource: the server responded with a status of 404")

	tb.navigate(ts.URL + "/demo")
	if got := tb.text("h1"); got != "Demo web app" {
		t.Fatalf("heading %q on /demo", got)
	}
	const start = `a[href="/demo/start"]`
	if got := tb.text(start); got != "Sign in with Latchkey" {
		t.Errorf("start link reads %q", got)
	}
	tb.shot("demo-home")
	tb.click(start)

	wantLoginPage(t, tb, "Demo Web App")
	signIn(tb, demo.Username, demo.Password)
	scopes := wantConsentPage(t, tb, "Demo Web App")
	if !strings.Contains(scopes, "Stay connected") {
		t.Errorf("demo consent scopes %q lack offline_access", scopes)
	}
	tb.shot("demo-consent")
	tb.click(allowButton)

	// The callback exchanges the code and redirects (post/redirect/get),
	// so the single-use code does not stay the current page.
	if got, want := tb.location(), ts.URL+"/demo"; got != want {
		t.Fatalf("after allow the browser is at %s, want %s", got, want)
	}
	if got := tb.text(`[role=status]`); !strings.HasPrefix(got, "Signed in") {
		t.Fatalf("demo callback says %q (alert: %v)", got, tb.has(`[role=alert]`))
	}
	if got := tb.text("h2"); got != "ID token claims" {
		t.Errorf("demo callback h2 %q", got)
	}
	var claims map[string]any
	if err := json.Unmarshal([]byte(tb.text("pre")), &claims); err != nil {
		t.Fatalf("ID token claims on the page are not JSON: %v", err)
	}
	user, err := ts.Store.GetUserByUsername(ctx, demo.Username)
	if err != nil {
		t.Fatal(err)
	}
	if claims["iss"] != ts.URL || !hasAudience(claims["aud"], demo.WebClientID) || claims["sub"] != user.ID ||
		claims["nonce"] == nil || claims["email"] != "demo@example.com" {
		t.Errorf("ID token claims %v: want iss %s, aud %s, sub %s, email demo@example.com and a nonce", claims, ts.URL, demo.WebClientID, user.ID)
	}
	rt := tokenRow(tb, "refresh_token")
	if !strings.HasPrefix(rt, "sha256:") || strings.Contains(rt, "lkrt_") {
		t.Errorf("the demo page shows refresh_token %q, want only a fingerprint", rt)
	}
	gen := demoGeneration(t, ts)
	tb.shot("demo-signed-in")

	tb.click(`form[action="/demo/refresh"] button[type=submit]`)
	if got := tb.text(`[role=status]`); !strings.HasPrefix(got, "Refreshed") {
		t.Fatalf("after Refresh now the demo says %q", got)
	}
	if got := tokenRow(tb, "refresh_token"); got == rt {
		t.Errorf("the refresh token fingerprint did not change after Refresh now")
	}
	// And on the server's side: the family moved on one generation.
	if got := demoGeneration(t, ts); got != gen+1 {
		t.Errorf("refresh token generation %d after Refresh now, want %d", got, gen+1)
	}
	tb.shot("demo-refreshed")
}

// hasAudience reports whether the aud claim (a string or a list) holds id.
func hasAudience(aud any, id string) bool {
	switch a := aud.(type) {
	case string:
		return a == id
	case []any:
		return slices.Contains(a, any(id))
	}
	return false
}

// tokenRow is the value the demo page shows in its table row named name.
func tokenRow(tb *tab, name string) string {
	tb.t.Helper()
	js, _ := json.Marshal(name)
	return run(tb, "read the "+name+" row", chromedp.Evaluate[string](fmt.Sprintf(
		`[...document.querySelectorAll("tr")].find(tr => tr.querySelector("th").textContent === %s)?.querySelector("td").textContent ?? ""`, js)))
}

// demoGeneration is the generation of the demo web client's one live
// refresh token family.
func demoGeneration(t *testing.T, ts *testserver.Server) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	fams, err := ts.Store.ListFamilies(ctx, store.FamilyFilter{ClientID: demo.WebClientID, LiveOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(fams) != 1 {
		t.Fatalf("%d live families for %s, want 1", len(fams), demo.WebClientID)
	}
	return fams[0].Generation
}
