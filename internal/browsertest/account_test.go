package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/testserver"
	"github.com/latchkey-dev/latchkey/internal/web"
)

// Selectors of the account page and the two-step verification pages.
const (
	accountTitle  = "Your account · Latchkey"
	signOutButton = `form.signout button[type=submit]`
	mfaSetupLink  = `a[href="/account/mfa/setup"]`
	otpInput      = `input[name=otp][autocomplete=one-time-code]`
	submitButton  = `form.form button[type=submit]`
)

// appCard is the selector of the account page's card for clientID.
func appCard(clientID string) string {
	return fmt.Sprintf(`li.app:has(input[name=client_id][value=%q])`, clientID)
}

// texts is the text of every element matching sel.
func texts(tb *tab, sel string) []string {
	tb.t.Helper()
	js, _ := json.Marshal(sel)
	return run(tb, "read the texts of "+sel, chromedp.Evaluate[[]string](fmt.Sprintf(
		`[...document.querySelectorAll(%s)].map(e => e.textContent.trim())`, js)))
}

// wantRecentDate checks that s is prefix followed by a date in the account
// page's layout within a few minutes of now.
func wantRecentDate(t *testing.T, s, prefix string, now time.Time) {
	t.Helper()
	d, ok := strings.CutPrefix(s, prefix)
	if !ok {
		t.Errorf("%q does not start with %q", s, prefix)
		return
	}
	at, err := time.Parse(web.DateLayout, d)
	if err != nil {
		t.Errorf("%q: the date is not in the layout %q: %v", s, web.DateLayout, err)
		return
	}
	if diff := now.Sub(at); diff < -2*time.Minute || diff > 2*time.Minute {
		t.Errorf("%q: %v is not now (%v)", s, at, now.UTC())
	}
}

// TestBrowserAccountRevoke: a user authorizes the web app (with offline
// access), sees it on the account page, revokes it there; its refresh
// token stops working at once and the next authorization asks again.
func TestBrowserAccountRevoke(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	tb := newTab(t)
	req := newAuthRequest(ts, oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess)

	tb.navigate(req.url)
	wantLoginPage(t, tb, "Web App")
	signIn(tb, testserver.Alice, testserver.AlicePW)
	wantConsentPage(t, tb, "Web App")
	tb.click(allowButton)
	q := tb.callback().Query()
	code := q.Get("code")
	if code == "" || q.Get("state") != req.state {
		t.Fatalf("callback query %v", q)
	}
	ts.Remember(code)
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	tok, err := req.cfg.Exchange(ctx, code, oauth2.VerifierOption(req.verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	ts.RememberToken(tok)
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token for offline_access")
	}
	// Use it once, as an app would: the card then shows when.
	r := ts.Refresh(tok.RefreshToken, testserver.WebClient, testserver.WebSecret)
	rt := r.Str("refresh_token")
	if r.Status != http.StatusOK || rt == "" {
		t.Fatalf("refresh: %d %v", r.Status, r.Body)
	}

	// The account page (the browser is still signed in to Latchkey).
	tb.navigate(ts.URL + "/account")
	if got := tb.title(); got != accountTitle {
		t.Fatalf("title %q at %s, want the account page", got, tb.location())
	}
	card := appCard(testserver.WebClient)
	tb.mustHave(card)
	if got := tb.text(card + " h3"); got != "Web App" {
		t.Errorf("app card name %q, want Web App", got)
	}
	if got := tb.text(card + " .app-id"); got != testserver.WebClient {
		t.Errorf("app card client id %q", got)
	}
	if got := tb.text(card + " .badge-offline"); got != "Stays connected" {
		t.Errorf("offline badge %q, want \"Stays connected\"", got)
	}
	if scopes := strings.Join(texts(tb, card+" ul.scopes li"), " | "); !strings.Contains(scopes, "Stay connected") {
		t.Errorf("the card's scopes %q do not list offline access", scopes)
	}
	meta := texts(tb, card+" ul.app-meta li")
	if len(meta) != 3 {
		t.Fatalf("app card meta %q, want first authorized, last used, sessions", meta)
	}
	now := ts.Clock.Now()
	wantRecentDate(t, meta[0], "First authorized ", now)
	wantRecentDate(t, meta[1], "Last used ", now)
	if meta[2] != "1 active session" {
		t.Errorf("app card says %q, want \"1 active session\"", meta[2])
	}
	tb.shot("account-app-card")

	tb.click(card + ` button[type=submit]`)
	if got := tb.text(`[role=status]`); got != "Access for Web App was revoked. It will have to ask you again." {
		t.Errorf("after revoking, the page says %q", got)
	}
	if tb.has(card) {
		t.Error("the revoked app is still listed")
	}
	tb.shot("account-revoked")

	// The refresh token is dead, with the reason.
	r = ts.Refresh(rt, testserver.WebClient, testserver.WebSecret)
	testserver.WantError(t, r, http.StatusBadRequest, "invalid_grant")
	if got := r.Str("error_reason"); got != "consent_withdrawn" {
		t.Errorf("error_reason %q, want consent_withdrawn", got)
	}
	evs, err := ts.Store.ListAudit(ctx, store.AuditFilter{ClientID: testserver.WebClient})
	if err != nil {
		t.Fatal(err)
	}
	if !hasEvent(evs, family.EventConsentEnded, "consent_withdrawn") {
		t.Error("no consent.withdrawn audit event")
	}

	// Signing in to the app again asks for consent again.
	req2 := newAuthRequest(ts, oidc.ScopeOpenID, oidc.ScopeOfflineAccess)
	tb.navigate(req2.url)
	wantConsentPage(t, tb, "Web App")
}

func hasEvent(evs []*store.AuditEvent, typ, reason string) bool {
	for _, e := range evs {
		if e.Type == typ && e.Reason == reason {
			return true
		}
	}
	return false
}

var recoveryCode = regexp.MustCompile(`^[a-z2-7]{5}-[a-z2-7]{5}$`)

// TestBrowserMFAEnrollment: a user turns on two-step verification from the
// account page with an authenticator app (the test computes its codes),
// gets recovery codes, and from then on signs in with a code — a TOTP code,
// or a recovery code, each only once.
func TestBrowserMFAEnrollment(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	tb := newTab(t)
	// Wrong codes come back with status 401, which Chrome logs.
	tb.allowConsole("/login: Failed to load resource: the server responded with a status of 401")

	tb.navigate(ts.URL + "/account")
	if got := tb.title(); got != "Sign in · Latchkey" {
		t.Fatalf("signed out, /account shows %q at %s, want the sign-in page", got, tb.location())
	}
	signIn(tb, testserver.Alice, testserver.AlicePW)
	if got := tb.title(); got != accountTitle {
		t.Fatalf("after signing in: %q at %s, want the account page", got, tb.location())
	}
	if got := tb.text(mfaSetupLink); got != "Set up two-step verification" {
		t.Errorf("setup link reads %q", got)
	}

	// Enroll.
	tb.click(mfaSetupLink)
	if got := tb.text("h1"); got != "Set up two-step verification" {
		t.Fatalf("heading %q on %s", got, tb.location())
	}
	tb.mustHave(`img[alt^="QR code"][src^="data:image/png;base64,"]`, otpInput)
	key := strings.ReplaceAll(tb.text("code.manual-key"), " ", "")
	if len(key) < 16 {
		t.Fatalf("manual key %q is too short", key)
	}
	ts.Remember(key)
	tb.shot("mfa-setup")
	code, err := totp.GenerateCode(key, ts.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	tb.typeInto(otpInput, code)
	tb.click(submitButton)
	if got := tb.text("h1"); got != "Save your recovery codes" {
		t.Fatalf("after the first code: heading %q (alert: %v)", got, tb.has(`[role=alert]`))
	}
	codes := texts(tb, "ul.recovery-codes code")
	if len(codes) < 8 {
		t.Fatalf("%d recovery codes, want at least 8", len(codes))
	}
	for _, c := range codes {
		if !recoveryCode.MatchString(c) {
			t.Errorf("recovery code %q has an unexpected form", c)
		}
	}
	ts.Remember(codes...)
	tb.shot("mfa-recovery-codes")
	tb.click(`a[href="/account"]`) // Continue
	if got := tb.text(`section[aria-labelledby=mfa-heading] .section-intro`); !strings.HasPrefix(got, "On.") {
		t.Errorf("the account page says two-step verification is %q", got)
	}

	// signInWith signs out, signs in with the password, and answers the
	// code prompt with code.
	signInWith := func(code string) {
		t.Helper()
		tb.click(signOutButton)
		signIn(tb, testserver.Alice, testserver.AlicePW)
		if tb.has(passwordInput) || !tb.has(otpInput) {
			t.Fatalf("after the password, %s shows no code prompt", tb.location())
		}
		if got := tb.text(".identity"); !strings.Contains(got, testserver.Alice) {
			t.Errorf("the code prompt does not say who is signing in: %q", got)
		}
		tb.typeInto(otpInput, code)
		tb.click(submitButton)
	}

	// A fresh TOTP code, from the next 30-second step (the enrollment
	// code's step is spent: replays are refused).
	ts.Clock.Advance(30 * time.Second)
	code, err = totp.GenerateCode(key, ts.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	signInWith(code)
	if got := tb.title(); got != accountTitle {
		t.Fatalf("after a TOTP code: %q at %s", got, tb.location())
	}
	tb.shot("mfa-signed-in")

	// A recovery code works once...
	signInWith(codes[0])
	if got := tb.title(); got != accountTitle {
		t.Fatalf("after a recovery code: %q at %s", got, tb.location())
	}
	// ...and not twice.
	signInWith(codes[0])
	if got := tb.text(`[role=alert]`); !strings.Contains(got, "not valid") {
		t.Errorf("a spent recovery code: alert %q", got)
	}
	if tb.title() == accountTitle {
		t.Fatal("a spent recovery code signed the user in")
	}
	// The prompt stays, and another recovery code still works.
	tb.typeInto(otpInput, codes[1])
	tb.click(submitButton)
	if got := tb.title(); got != accountTitle {
		t.Fatalf("after another recovery code: %q at %s", got, tb.location())
	}
}
