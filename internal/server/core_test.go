package server_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/store/sqlstore"
	"github.com/latchkey-dev/latchkey/internal/testdb"
	"github.com/latchkey-dev/latchkey/internal/token"
)

type idClaims struct {
	Subject  string   `json:"sub"`
	AuthTime int64    `json:"auth_time"`
	IssuedAt int64    `json:"iat"`
	Nonce    string   `json:"nonce"`
	AMR      []string `json:"amr"`
	ACR      string   `json:"acr"`
	Name     string   `json:"name"`
	Username string   `json:"preferred_username"`
	Email    string   `json:"email"`
	AtHash   string   `json:"at_hash"`
}

func verifyID(t *testing.T, ts *testServer, clientID string, tok *oauth2.Token) (*oidc.IDToken, idClaims) {
	t.Helper()
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		t.Fatal("no id_token in token response")
	}
	idt, err := ts.provider().Verifier(&oidc.Config{ClientID: clientID, Now: ts.Clock.Now}).Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("at_hash: %v", err)
	}
	return idt, c
}

func TestDiscoveryAndJWKS(t *testing.T) {
	ts := newTestServer(t)
	p := ts.provider() // go-oidc checks the issuer matches
	var meta map[string]any
	if err := p.Claims(&meta); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"token_endpoint": ts.URL + "/token", "userinfo_endpoint": ts.URL + "/userinfo", "jwks_uri": ts.URL + "/jwks",
	} {
		if meta[k] != want {
			t.Errorf("%s = %v, want %v", k, meta[k], want)
		}
	}
	for k, want := range map[string]string{
		"response_types_supported": "code", "code_challenge_methods_supported": "S256",
		"grant_types_supported": "refresh_token", "token_endpoint_auth_methods_supported": "none",
		"scopes_supported": "offline_access",
	} {
		list, _ := meta[k].([]any)
		if !slices.Contains(list, any(want)) {
			t.Errorf("%s = %v, want it to contain %s", k, meta[k], want)
		}
	}
	if list, _ := meta["code_challenge_methods_supported"].([]any); slices.Contains(list, any("plain")) {
		t.Error("plain PKCE advertised")
	}
}

// TestCodeFlowConfidential is the whole story for a web app: sign in through
// the real pages, exchange the code with client_secret_basic, verify the ID
// token with go-oidc, call userinfo, and refresh with rotation.
func TestCodeFlowConfidential(t *testing.T) {
	ts := newTestServer(t)
	cfg := ts.oauth2Config(webClient, webSecret, "openid", "profile", "email", "offline_access")
	tok := ts.login(cfg, alice, alicePW)
	if tok.TokenType != "Bearer" || tok.AccessToken == "" {
		t.Fatalf("bad token %+v", tok)
	}
	if !strings.HasPrefix(tok.RefreshToken, token.RefreshPrefix) || len(tok.RefreshToken) < 70 {
		t.Fatalf("refresh token %q lacks the prefix or is too short", tok.RefreshToken)
	}
	for _, k := range []string{"refresh_token_expires_in", "refresh_token_absolute_expires_at"} {
		if tok.Extra(k) == nil {
			t.Errorf("token response lacks %s", k)
		}
	}
	idt, c := verifyID(t, ts, webClient, tok)
	if c.Nonce != "n-0S6_WzA2Mj" {
		t.Errorf("nonce = %q", c.Nonce)
	}
	if c.Username != alice || c.Email != "alice@example.com" || c.AuthTime == 0 || !slices.Contains(c.AMR, "pwd") {
		t.Errorf("claims %+v", c)
	}

	// The access token is an RFC 9068 JWT.
	parts := strings.Split(tok.AccessToken, ".")
	if len(parts) != 3 {
		t.Fatal("access token is not a JWT")
	}

	// userinfo accepts it.
	ui, err := ts.provider().UserInfo(context.Background(), oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	if ui.Subject != idt.Subject || ui.Email != "alice@example.com" {
		t.Errorf("userinfo %+v", ui)
	}

	// Refresh through x/oauth2's token source: a new access token, a new
	// ID token (OIDC Core §12.2) and a rotated refresh token.
	ts.Clock.Advance(2 * time.Second)
	old := *tok
	old.Expiry = time.Now().Add(-time.Minute)
	nt, err := cfg.TokenSource(context.Background(), &old).Token()
	if err != nil {
		t.Fatal(err)
	}
	ts.rememberToken(nt)
	if nt.RefreshToken == tok.RefreshToken || nt.AccessToken == tok.AccessToken {
		t.Fatal("refresh did not rotate")
	}
	idt2, c2 := verifyID(t, ts, webClient, nt)
	if idt2.Subject != idt.Subject || c2.AuthTime != c.AuthTime || c2.IssuedAt <= c.IssuedAt || c2.Nonce != "" {
		t.Errorf("refreshed ID token claims %+v, original %+v", c2, c)
	}

	// Once the grace window has passed, the rotated-out token no longer works.
	ts.Clock.Advance(ts.Config.RefreshGrace.D() + time.Second)
	r := ts.refresh(tok.RefreshToken, webClient, webSecret)
	wantError(t, r, http.StatusBadRequest, "invalid_grant")
}

func TestCodeFlowClientSecretPost(t *testing.T) {
	ts := newTestServer(t)
	cfg := ts.oauth2Config(webClient, webSecret, "openid", "offline_access")
	cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	tok := ts.login(cfg, bob, bobPW)
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	verifyID(t, ts, webClient, tok)
	// A short operator-chosen secret (argon2id-hashed) works too.
	tok = ts.login(ts.oauth2Config(shortClient, shortSecret, "openid"), bob, bobPW)
	verifyID(t, ts, shortClient, tok)
}

func TestCodeFlowPublicClient(t *testing.T) {
	ts := newTestServer(t)
	cfg := ts.oauth2Config(spaClient, "", "openid", "offline_access")
	tok := ts.login(cfg, alice, alicePW)
	verifyID(t, ts, spaClient, tok)
	if tok.RefreshToken == "" {
		t.Fatal("public client got no refresh token")
	}
	r := ts.refresh(tok.RefreshToken, spaClient, "")
	if r.Status != 200 || r.str("refresh_token") == "" || r.str("id_token") == "" {
		t.Fatalf("public refresh: %d %v", r.Status, r.Body)
	}
}

// OIDC Core §11: no offline_access, no refresh token.
func TestNoRefreshTokenWithoutOfflineAccess(t *testing.T) {
	ts := newTestServer(t)
	tok := ts.login(ts.oauth2Config(webClient, webSecret, "openid", "profile"), alice, alicePW)
	if tok.RefreshToken != "" {
		t.Fatal("refresh token issued without offline_access")
	}
	verifyID(t, ts, webClient, tok)
	// A client not allowed the refresh_token grant gets none either.
	if _, err := ts.Store.UpdateClient(context.Background(), webClient, func(c *store.Client) error {
		c.GrantTypes = []string{"authorization_code"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tok = ts.login(ts.oauth2Config(webClient, webSecret, "openid", "offline_access"), bob, bobPW)
	if tok.RefreshToken != "" {
		t.Fatal("refresh token issued to a client without the refresh_token grant")
	}
}

func TestScopeNarrowingAndWidening(t *testing.T) {
	ts := newTestServer(t)
	tok := ts.login(ts.oauth2Config(webClient, webSecret, "openid", "profile", "offline_access"), alice, alicePW)
	r := ts.refresh(tok.RefreshToken, webClient, webSecret, "scope", "openid")
	if r.Status != 200 || r.str("scope") != "openid" {
		t.Fatalf("narrowing: %d %v", r.Status, r.Body)
	}
	// The family keeps its scope: the next refresh without scope gets it all back.
	r2 := ts.refresh(r.str("refresh_token"), webClient, webSecret)
	if r2.Status != 200 || !strings.Contains(r2.str("scope"), "profile") {
		t.Fatalf("after narrowing: %d %v", r2.Status, r2.Body)
	}
	r3 := ts.refresh(r2.str("refresh_token"), webClient, webSecret, "scope", "openid email")
	wantError(t, r3, http.StatusBadRequest, "invalid_scope")
	// A refused widening does not burn the token.
	if r4 := ts.refresh(r2.str("refresh_token"), webClient, webSecret); r4.Status != 200 {
		t.Fatalf("after refused widening: %d %v", r4.Status, r4.Body)
	}
}

func TestRefreshTokenOfAnotherClient(t *testing.T) {
	ts := newTestServer(t)
	tok := ts.login(ts.oauth2Config(webClient, webSecret, "openid", "offline_access"), alice, alicePW)
	r := ts.refresh(tok.RefreshToken, otherClient, otherSecret)
	wantError(t, r, http.StatusBadRequest, "invalid_grant")
	unknown := ts.refresh("lkrt_not-a-real-token", otherClient, otherSecret)
	if r.str("error_description") != unknown.str("error_description") || r.str("error_reason") != unknown.str("error_reason") {
		t.Errorf("another client's token is distinguishable from an unknown one: %v vs %v", r.Body, unknown.Body)
	}
	// The owner's family is untouched.
	if r := ts.refresh(tok.RefreshToken, webClient, webSecret); r.Status != 200 {
		t.Fatalf("owner refresh after foreign attempt: %d %v", r.Status, r.Body)
	}
}

func TestClientAuthenticationFailures(t *testing.T) {
	ts := newTestServer(t)
	tok := ts.login(ts.oauth2Config(webClient, webSecret, "openid", "offline_access"), alice, alicePW)
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
	for name, tc := range map[string]struct {
		user, pass string
		body       url.Values
	}{
		"bad basic secret":     {user: webClient, pass: "wrong-secret-wrong-secret-wrong-secret"},
		"unknown basic client": {user: "nobody", pass: "whatever-secret"},
		"bad post secret":      {body: url.Values{"client_id": {webClient}, "client_secret": {"nope-nope-nope"}}},
		"missing secret":       {body: url.Values{"client_id": {webClient}}},
		"public with secret":   {body: url.Values{"client_id": {spaClient}, "client_secret": {"anything-at-all"}}},
		"no client at all":     {},
	} {
		t.Run(name, func(t *testing.T) {
			f := url.Values{}
			for k, v := range form {
				f[k] = v
			}
			for k, v := range tc.body {
				f[k] = v
			}
			r := ts.post("/token", f, tc.user, tc.pass)
			wantError(t, r, http.StatusUnauthorized, "invalid_client")
			if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("WWW-Authenticate = %q", r.Header.Get("WWW-Authenticate"))
			}
		})
	}
	// Two methods at once is a malformed request.
	f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_secret": {webSecret}}
	wantError(t, ts.post("/token", f, webClient, webSecret), http.StatusBadRequest, "invalid_request")
	// None of the failures burnt the token.
	if r := ts.refresh(tok.RefreshToken, webClient, webSecret); r.Status != 200 {
		t.Fatalf("refresh after failed authentications: %d %v", r.Status, r.Body)
	}
}

func TestMalformedTokenRequests(t *testing.T) {
	ts := newTestServer(t)
	basic := func(req *http.Request) { req.SetBasicAuth(webClient, webSecret) }
	mk := func(method, ctype, body string) *http.Request {
		req, _ := http.NewRequest(method, ts.URL+"/token", strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		basic(req)
		return req
	}
	form := "application/x-www-form-urlencoded"
	cases := []struct {
		name   string
		req    *http.Request
		status int
		code   string
	}{
		{"GET", mk(http.MethodGet, "", ""), 405, "invalid_request"},
		{"JSON body", mk(http.MethodPost, "application/json", `{"grant_type":"refresh_token"}`), 415, "invalid_request"},
		{"no content type", mk(http.MethodPost, "", "grant_type=refresh_token"), 415, "invalid_request"},
		{"oversized", mk(http.MethodPost, form, "grant_type=refresh_token&refresh_token="+strings.Repeat("a", 70<<10)), 413, "invalid_request"},
		{"duplicate grant_type", mk(http.MethodPost, form, "grant_type=refresh_token&grant_type=authorization_code"), 400, "invalid_request"},
		{"missing grant_type", mk(http.MethodPost, form, "refresh_token=x"), 400, "invalid_request"},
		{"unsupported grant", mk(http.MethodPost, form, "grant_type=password&username=a&password=b"), 400, "unsupported_grant_type"},
		{"missing code", mk(http.MethodPost, form, "grant_type=authorization_code&redirect_uri="+url.QueryEscape(redirect)), 400, "invalid_request"},
		{"missing refresh_token", mk(http.MethodPost, form, "grant_type=refresh_token"), 400, "invalid_request"},
		{"unknown code", mk(http.MethodPost, form, "grant_type=authorization_code&code=lkac_nope&redirect_uri="+url.QueryEscape(redirect)), 400, "invalid_grant"},
		{"garbage refresh token", mk(http.MethodPost, form, "grant_type=refresh_token&refresh_token=%00%01"), 400, "invalid_grant"},
		{"params in query", func() *http.Request {
			r := mk(http.MethodPost, form, "grant_type=refresh_token&refresh_token=x")
			r.URL.RawQuery = "client_secret=oops"
			return r
		}(), 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do(tc.req)
			wantError(t, r, tc.status, tc.code)
			if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q", cc)
			}
		})
	}
}

// authStart begins an authorization request for the web client and returns
// the browser's first response.
func authURL(ts *testServer, params url.Values) string {
	return ts.URL + "/authorize?" + params.Encode()
}

func baseParams(clientID string) url.Values {
	v := oauth2.GenerateVerifier()
	return url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect}, "scope": {"openid offline_access"},
		"state": {"xyz"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(v)}, "code_challenge_method": {"S256"},
	}
}

func TestAuthorizationRequestErrors(t *testing.T) {
	ts := newTestServer(t)
	// Errors that must not redirect (RFC 6749 §4.1.2.1): shown as a page.
	for name, mod := range map[string]func(url.Values){
		"unknown client":        func(v url.Values) { v.Set("client_id", "nope") },
		"missing client":        func(v url.Values) { v.Del("client_id") },
		"unregistered redirect": func(v url.Values) { v.Set("redirect_uri", redirect+"/x") },
		"redirect prefix match": func(v url.Values) { v.Set("redirect_uri", "http://localhost:9999/callback?x=1") },
		"missing redirect":      func(v url.Values) { v.Del("redirect_uri") },
		"duplicate client_id":   func(v url.Values) { v.Add("client_id", webClient) },
	} {
		t.Run(name, func(t *testing.T) {
			p := baseParams(webClient)
			mod(p)
			page, res, err := ts.browser().Get(authURL(ts, p))
			if err != nil {
				t.Fatal(err)
			}
			if res != nil {
				t.Fatalf("redirected to %s", res.Redirect)
			}
			if page.Status != 400 || !strings.Contains(page.Body, "<html") {
				t.Fatalf("status %d body %.200s", page.Status, page.Body)
			}
		})
	}
	// Errors redirected to the client with state and iss.
	for name, tc := range map[string]struct {
		client string
		mod    func(url.Values)
		code   string
	}{
		"response_type token":   {webClient, func(v url.Values) { v.Set("response_type", "token") }, "unsupported_response_type"},
		"missing response_type": {webClient, func(v url.Values) { v.Del("response_type") }, "invalid_request"},
		"unknown scope":         {webClient, func(v url.Values) { v.Set("scope", "openid admin") }, "invalid_scope"},
		"pkce plain":            {webClient, func(v url.Values) { v.Set("code_challenge_method", "plain") }, "invalid_request"},
		"pkce method missing":   {webClient, func(v url.Values) { v.Del("code_challenge_method") }, "invalid_request"},
		"public without pkce": {spaClient, func(v url.Values) {
			v.Del("code_challenge")
			v.Del("code_challenge_method")
		}, "invalid_request"},
		"prompt none not signed in": {webClient, func(v url.Values) { v.Set("prompt", "none") }, "login_required"},
		"request object":            {webClient, func(v url.Values) { v.Set("request", "eyJ...") }, "request_not_supported"},
	} {
		t.Run(name, func(t *testing.T) {
			p := baseParams(tc.client)
			tc.mod(p)
			_, res, err := ts.browser().Get(authURL(ts, p))
			if err != nil {
				t.Fatal(err)
			}
			if res == nil {
				t.Fatal("not redirected")
			}
			q := res.Redirect.Query()
			if q.Get("error") != tc.code || q.Get("state") != "xyz" || q.Get("iss") != ts.URL || q.Get("error_description") == "" {
				t.Fatalf("redirect %s", res.Redirect)
			}
		})
	}
}

func TestPKCEAtTokenEndpoint(t *testing.T) {
	ts := newTestServer(t)
	cfg := ts.oauth2Config(spaClient, "", "openid")
	getCode := func(verifier string) string {
		cb := ts.signIn(ts.browser(), cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), alice, alicePW)
		return cb.Query().Get("code")
	}
	ex := func(code, verifier string) tokenResponse {
		f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "client_id": {spaClient}}
		if verifier != "" {
			f.Set("code_verifier", verifier)
		}
		return ts.post("/token", f, "", "")
	}
	v := oauth2.GenerateVerifier()
	wantError(t, ex(getCode(v), oauth2.GenerateVerifier()), 400, "invalid_grant")
	wantError(t, ex(getCode(v), ""), 400, "invalid_grant")
	wantError(t, ex(getCode(v), "short"), 400, "invalid_request")
	if r := ex(getCode(v), v); r.Status != 200 {
		t.Fatalf("right verifier: %d %v", r.Status, r.Body)
	}
	// A verifier without a challenge (PKCE downgrade) is refused.
	conf := ts.oauth2Config(webClient, webSecret, "openid")
	cb := ts.signIn(ts.browser(), conf.AuthCodeURL("s"), alice, alicePW)
	f := url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")}, "redirect_uri": {redirect}, "code_verifier": {v}}
	wantError(t, ts.post("/token", f, webClient, webSecret), 400, "invalid_grant")
}

func TestAuthorizationCodeRules(t *testing.T) {
	ts := newTestServer(t)
	cfg := ts.oauth2Config(webClient, webSecret, "openid", "offline_access")
	v := oauth2.GenerateVerifier()
	code := func() string {
		cb := ts.signIn(ts.browser(), cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), alice, alicePW)
		c := cb.Query().Get("code")
		ts.remember(c)
		return c
	}
	ex := func(code, clientID, secret, redirectURI string) tokenResponse {
		return ts.post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {v}}, clientID, secret)
	}

	t.Run("replay revokes what the code produced", func(t *testing.T) {
		c := code()
		first := ex(c, webClient, webSecret, redirect)
		if first.Status != 200 {
			t.Fatalf("first exchange: %d %v", first.Status, first.Body)
		}
		wantError(t, ex(c, webClient, webSecret, redirect), 400, "invalid_grant")
		r := ts.refresh(first.str("refresh_token"), webClient, webSecret)
		wantError(t, r, 400, "invalid_grant")
		if r.str("error_reason") != "code_replayed" {
			t.Errorf("error_reason = %q", r.str("error_reason"))
		}
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+first.str("access_token"))
		if ui := ts.do(req); ui.Status != 401 {
			t.Errorf("userinfo with a token from a replayed code: %d", ui.Status)
		}
	})
	t.Run("expires after 60s", func(t *testing.T) {
		c := code()
		ts.Clock.Advance(61 * time.Second)
		wantError(t, ex(c, webClient, webSecret, redirect), 400, "invalid_grant")
	})
	t.Run("issued to another client", func(t *testing.T) {
		c := code()
		wantError(t, ex(c, otherClient, otherSecret, redirect), 400, "invalid_grant")
	})
	t.Run("redirect_uri must match", func(t *testing.T) {
		c := code()
		wantError(t, ex(c, webClient, webSecret, redirect+"x"), 400, "invalid_grant")
	})
}

func TestConsentRememberedAndDeny(t *testing.T) {
	ts := newTestServer(t)
	cfg := ts.oauth2Config(webClient, webSecret, "openid", "offline_access")
	b := ts.browser()
	// First time: login then consent page.
	page, _, err := b.Get(cfg.AuthCodeURL("s1", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if err != nil || page == nil || page.FormWith("password") == nil {
		t.Fatalf("expected the sign-in page, got %v %v", page, err)
	}
	lf := page.FormWith("password")
	if lf.Inputs["username"]["autocomplete"] != "username" || lf.Inputs["password"]["autocomplete"] != "current-password" {
		t.Errorf("autocomplete attributes: %v", lf.Inputs)
	}
	page, _, err = b.Submit(lf, map[string]string{"username": alice, "password": alicePW}, "", "")
	if err != nil || page == nil || page.FormWith("decision") == nil {
		t.Fatalf("expected the consent page: %v", err)
	}
	if !strings.Contains(page.Body, "Stay connected when you") {
		t.Error("consent page does not spell out offline_access")
	}
	// Deny → access_denied.
	_, res, err := b.Submit(page.FormWith("decision"), nil, "decision", "deny")
	if err != nil || res == nil || res.Redirect.Query().Get("error") != "access_denied" || res.Redirect.Query().Get("state") != "s1" {
		t.Fatalf("deny: %v %v", res, err)
	}
	// Allow, then a second request goes straight through (consent remembered).
	cb := ts.signIn(b, cfg.AuthCodeURL("s2", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), alice, alicePW)
	if cb.Query().Get("code") == "" {
		t.Fatal("no code after allow")
	}
	_, res, err = b.Get(cfg.AuthCodeURL("s3", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if err != nil || res == nil || res.Redirect.Query().Get("code") == "" || res.Redirect.Query().Get("state") != "s3" {
		t.Fatalf("remembered consent should redirect at once: %v %v", res, err)
	}
	// prompt=consent asks again.
	page, _, _ = b.Get(cfg.AuthCodeURL("s4", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "consent")))
	if page == nil || page.FormWith("decision") == nil {
		t.Fatal("prompt=consent did not show the consent page")
	}
}

func TestSignInPageSecurity(t *testing.T) {
	ts := newTestServer(t)
	cfg := ts.oauth2Config(webClient, webSecret, "openid")
	b := ts.browser()
	page, _, err := b.Get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if err != nil {
		t.Fatal(err)
	}
	lf := page.FormWith("password")
	// A forged CSRF token is refused.
	bad, _, err := b.Submit(lf, map[string]string{"username": alice, "password": alicePW, "csrf_token": "forged"}, "", "")
	if err != nil || bad == nil || bad.Status != http.StatusForbidden {
		t.Fatalf("forged CSRF token: %+v %v", bad, err)
	}
	// A fresh browser (no CSRF cookie) posting a stolen token is refused too.
	other := ts.browser()
	bad, _, err = other.Submit(lf, map[string]string{"username": alice, "password": alicePW}, "", "")
	if err != nil || bad == nil || bad.Status != http.StatusForbidden {
		t.Fatalf("cross-browser CSRF: %+v %v", bad, err)
	}
	// Wrong password and unknown user look the same.
	p1, _, _ := b.Submit(lf, map[string]string{"username": alice, "password": "wrong password"}, "", "")
	p2, _, _ := b.Submit(lf, map[string]string{"username": "mallory", "password": "wrong password"}, "", "")
	if p1.Status != 401 || p2.Status != 401 || !strings.Contains(p1.Body, "incorrect") || !strings.Contains(p2.Body, "incorrect") {
		t.Fatalf("bad credentials: %d %d", p1.Status, p2.Status)
	}
	// Session cookie attributes (read from the response that sets it).
	noFollow := *b.Client
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.PostForm(lf.Action.String(), url.Values{"username": {alice}, "password": {alicePW}, "csrf_token": lf.Fields["csrf_token"], "request": lf.Fields["request"]})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var found bool
	for _, c := range resp.Cookies() {
		if c.Name == "latchkey_session" {
			found = true
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
				t.Errorf("session cookie attributes: %+v", c)
			}
		}
	}
	if !found {
		t.Fatalf("no session cookie set after sign-in (status %d)", resp.StatusCode)
	}
}

// The database never holds a usable refresh token, code or client secret.
func TestNoUsableSecretsAtRest(t *testing.T) {
	path := testdb.SQLitePath(t)
	st, err := sqlstore.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ts := newTestServerOn(t, st)
	tok := ts.login(ts.oauth2Config(webClient, webSecret, "openid", "offline_access"), alice, alicePW)
	r := ts.refresh(tok.RefreshToken, webClient, webSecret)
	var blob []byte
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		blob = append(blob, b...)
	}
	for _, s := range []string{tok.RefreshToken, r.str("refresh_token"), webSecret, alicePW, tok.AccessToken[:60]} {
		if strings.Contains(string(blob), s) || strings.Contains(string(blob), strings.TrimPrefix(s, token.RefreshPrefix)) {
			t.Errorf("the database file contains a secret (%.10s…)", s)
		}
	}
}
