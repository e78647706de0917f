package browsertest

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/latchkey-dev/latchkey/examples/webapp/app"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testserver"
)

const (
	exampleClient = "example-webapp"
	exampleSecret = "example-webapp-secret-0123456789abcdefghij"
)

// startExampleApp registers the example web app (examples/webapp) at ts
// and serves it on its own origin, sharing ts's clock. It returns its URL.
func startExampleApp(t *testing.T, ts *testserver.Server) string {
	t.Helper()
	hs := httptest.NewUnstartedServer(nil)
	appURL := "http://" + hs.Listener.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	if _, err := operator.CreateClient(ctx, ts.Store, operator.ClientSpec{
		ID: exampleClient, Name: "Example Web App", Secret: exampleSecret, RedirectURIs: []string{appURL + "/callback"},
	}, time.Now().UTC().Truncate(time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	ts.Remember(exampleSecret)
	var logs testserver.SyncBuffer
	key := make([]byte, 32)
	key[0] = 1
	a, err := app.New(ctx, app.Config{
		Issuer: ts.URL, ClientID: exampleClient, ClientSecret: exampleSecret, RedirectURL: appURL + "/callback",
		SessionKey: key, Now: ts.Clock.Now, Log: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = a.Handler()
	hs.Start()
	t.Cleanup(hs.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the example app logged:\n%s", logs.String())
		}
	})
	return appURL
}

// hasCookie reports whether the browser holds cookie name for u.
func (tb *tab) hasCookie(u, name string) bool {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{u}})
	if err != nil {
		tb.t.Fatalf("get cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == name {
			return true
		}
	}
	return false
}

// TestBrowserExampleApp runs the example web app's whole story in Chromium:
// sign in through Latchkey's pages, see the profile, get refreshed before
// expiry, revoke the app on Latchkey's account page, and be told so by the
// app.
func TestBrowserExampleApp(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	appURL := startExampleApp(t, ts)
	tb := newTab(t)

	tb.navigate(appURL + "/")
	if got := tb.text("h1"); got != "Example web app" {
		t.Fatalf("heading %q at %s", got, tb.location())
	}
	if got := tb.text("#sign-in"); got != "Sign in with Latchkey" {
		t.Errorf("sign-in link reads %q", got)
	}
	tb.shot("example-home")
	tb.click("#sign-in")

	wantLoginPage(t, tb, "Example Web App")
	signIn(tb, testserver.Alice, testserver.AlicePW)
	if scopes := wantConsentPage(t, tb, "Example Web App"); !strings.Contains(scopes, "Stay connected") {
		t.Errorf("consent scopes %q lack offline_access", scopes)
	}
	tb.click(allowButton)

	// Back in the app, which exchanged the code and redirected home.
	if got := tb.location(); got != appURL+"/" {
		t.Fatalf("after allowing, the browser is at %s, want %s/", got, appURL)
	}
	if tb.has("#error") {
		t.Fatalf("the app shows an error: %s", tb.text("#error"))
	}
	for sel, want := range map[string]string{
		"#profile-name": "Alice Liddell", "#profile-email": "alice@example.com",
		"#profile-username": testserver.Alice, "#refreshes": "0",
	} {
		if got := tb.text(sel); got != want {
			t.Errorf("%s reads %q, want %q", sel, got, want)
		}
	}
	sess := tb.cookie(appURL, "webapp_session")
	if !sess.HTTPOnly || sess.SameSite != "Lax" {
		t.Errorf("app session cookie HttpOnly=%v SameSite=%q, want HttpOnly and Lax", sess.HTTPOnly, sess.SameSite)
	}
	if strings.Contains(sess.Value, "lkrt_") || strings.HasPrefix(sess.Value, "eyJ") || len(sess.Value) != 43 {
		t.Errorf("the app session cookie %.10s… is not an opaque random id", sess.Value)
	}
	if html := run(tb, "read the page", chromedp.Evaluate[string]("document.documentElement.outerHTML")); strings.Contains(html, "lkrt_") || strings.Contains(html, "eyJ") {
		t.Error("the app's page contains a token")
	}
	tb.shot("example-profile")

	// Shortly before the access token expires, the next page refreshes it.
	ts.Clock.Advance(ts.Config.AccessTokenTTL.D() - 30*time.Second)
	tb.navigate(appURL + "/")
	if got := tb.text("#refreshes"); got != "1" {
		t.Errorf("after the access token neared expiry the app made %s refreshes, want 1", got)
	}

	// Revoke the app on Latchkey's account page.
	tb.navigate(ts.URL + "/account")
	card := appCard(exampleClient)
	if got := tb.text(card + " h3"); got != "Example Web App" {
		t.Fatalf("account page card %q", got)
	}
	tb.click(card + ` button[type=submit]`)
	if got := tb.text(`[role=status]`); !strings.HasPrefix(got, "Access for Example Web App was revoked") {
		t.Errorf("after revoking: %q", got)
	}

	// The app finds out at its next request and says why.
	tb.navigate(appURL + "/")
	if got := tb.text("#revoked"); got != "Your access was revoked (reason: consent_withdrawn). Sign in again." {
		t.Errorf("the app says %q after the revocation", got)
	}
	tb.mustHave("#sign-in")
	if tb.has("#profile") {
		t.Error("the app still shows the profile")
	}
	if tb.hasCookie(appURL, "webapp_session") {
		t.Error("the app kept its session cookie")
	}
	tb.shot("example-revoked")

	// Signing in again asks for consent again.
	tb.click("#sign-in")
	wantConsentPage(t, tb, "Example Web App")
}
