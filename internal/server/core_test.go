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
	"github.com/latchkey-dev/latchkey/internal/testserver"
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

func verifyID(t *testing.T, ts *testserver.Server, clientID string, tok *oauth2.Token) (*oidc.IDToken, idClaims) {
	t.Helper()
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		t.Fatal("no id_token in token response")
	}
	idt, err := ts.Provider().Verifier(&oidc.Config{ClientID: clientID, Now: ts.Clock.Now}).Verify(context.Background(), raw)
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
	ts := testserver.Start(t)
	p := ts.Provider() // go-oidc checks the issuer matches
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
	ts := testserver.Start(t)
	cfg := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "profile", "email", "offline_access")
	tok := ts.Login(cfg, testserver.Alice, testserver.AlicePW)
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
	idt, c := verifyID(t, ts, testserver.WebClient, tok)
	if c.Nonce != "n-0S6_WzA2Mj" {
		t.Errorf("nonce = %q", c.Nonce)
	}
	if c.Username != testserver.Alice || c.Email != "alice@example.com" || c.AuthTime == 0 || !slices.Contains(c.AMR, "pwd") {
		t.Errorf("claims %+v", c)
	}

	// The access token is an RFC 9068 JWT.
	parts := strings.Split(tok.AccessToken, ".")
	if len(parts) != 3 {
		t.Fatal("access token is not a JWT")
	}

	// userinfo accepts it.
	ui, err := ts.Provider().UserInfo(context.Background(), oauth2.StaticTokenSource(tok))
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
	ts.RememberToken(nt)
	if nt.RefreshToken == tok.RefreshToken || nt.AccessToken == tok.AccessToken {
		t.Fatal("refresh did not rotate")
	}
	idt2, c2 := verifyID(t, ts, testserver.WebClient, nt)
	if idt2.Subject != idt.Subject || c2.AuthTime != c.AuthTime || c2.IssuedAt <= c.IssuedAt || c2.Nonce != "" {
		t.Errorf("refreshed ID token claims %+v, original %+v", c2, c)
	}

	// Once the grace window has passed, the rotated-out token no longer works.
	ts.Clock.Advance(ts.Config.RefreshGrace.D() + time.Second)
	r := ts.Refresh(tok.RefreshToken, testserver.WebClient, testserver.WebSecret)
	testserver.WantError(t, r, http.StatusBadRequest, "invalid_grant")
}

func TestCodeFlowClientSecretPost(t *testing.T) {
	ts := testserver.Start(t)
	cfg := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "offline_access")
	cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	tok := ts.Login(cfg, testserver.Bob, testserver.BobPW)
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	verifyID(t, ts, testserver.WebClient, tok)
	// A short operator-chosen secret (argon2id-hashed) works too.
	tok = ts.Login(ts.OAuth2Config(testserver.ShortClient, testserver.ShortSecret, "openid"), testserver.Bob, testserver.BobPW)
	verifyID(t, ts, testserver.ShortClient, tok)
}

func TestCodeFlowPublicClient(t *testing.T) {
	ts := testserver.Start(t)
	cfg := ts.OAuth2Config(testserver.SPAClient, "", "openid", "offline_access")
	tok := ts.Login(cfg, testserver.Alice, testserver.AlicePW)
	verifyID(t, ts, testserver.SPAClient, tok)
	if tok.RefreshToken == "" {
		t.Fatal("public client got no refresh token")
	}
	r := ts.Refresh(tok.RefreshToken, testserver.SPAClient, "")
	if r.Status != 200 || r.Str("refresh_token") == "" || r.Str("id_token") == "" {
		t.Fatalf("public refresh: %d %v", r.Status, r.Body)
	}
}

// OIDC Core §11: no offline_access, no refresh token.
func TestNoRefreshTokenWithoutOfflineAccess(t *testing.T) {
	ts := testserver.Start(t)
	tok := ts.Login(ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "profile"), testserver.Alice, testserver.AlicePW)
	if tok.RefreshToken != "" {
		t.Fatal("refresh token issued without offline_access")
	}
	verifyID(t, ts, testserver.WebClient, tok)
	// A client not allowed the refresh_token grant gets none either.
	if _, err := ts.Store.UpdateClient(context.Background(), testserver.WebClient, func(c *store.Client) error {
		c.GrantTypes = []string{"authorization_code"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tok = ts.Login(ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "offline_access"), testserver.Bob, testserver.BobPW)
	if tok.RefreshToken != "" {
		t.Fatal("refresh token issued to a client without the refresh_token grant")
	}
}

func TestScopeNarrowingAndWidening(t *testing.T) {
	ts := testserver.Start(t)
	tok := ts.Login(ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "profile", "offline_access"), testserver.Alice, testserver.AlicePW)
	r := ts.Refresh(tok.RefreshToken, testserver.WebClient, testserver.WebSecret, "scope", "openid")
	if r.Status != 200 || r.Str("scope") != "openid" {
		t.Fatalf("narrowing: %d %v", r.Status, r.Body)
	}
	// The family keeps its scope: the next refresh without scope gets it all back.
	r2 := ts.Refresh(r.Str("refresh_token"), testserver.WebClient, testserver.WebSecret)
	if r2.Status != 200 || !strings.Contains(r2.Str("scope"), "profile") {
		t.Fatalf("after narrowing: %d %v", r2.Status, r2.Body)
	}
	r3 := ts.Refresh(r2.Str("refresh_token"), testserver.WebClient, testserver.WebSecret, "scope", "openid email")
	testserver.WantError(t, r3, http.StatusBadRequest, "invalid_scope")
	// A refused widening does not burn the token.
	if r4 := ts.Refresh(r2.Str("refresh_token"), testserver.WebClient, testserver.WebSecret); r4.Status != 200 {
		t.Fatalf("after refused widening: %d %v", r4.Status, r4.Body)
	}
}

func TestRefreshTokenOfAnotherClient(t *testing.T) {
	ts := testserver.Start(t)
	tok := ts.Login(ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "offline_access"), testserver.Alice, testserver.AlicePW)
	r := ts.Refresh(tok.RefreshToken, testserver.OtherClient, testserver.OtherSecret)
	testserver.WantError(t, r, http.StatusBadRequest, "invalid_grant")
	unknown := ts.Refresh("lkrt_not-a-real-token", testserver.OtherClient, testserver.OtherSecret)
	if r.Str("error_description") != unknown.Str("error_description") || r.Str("error_reason") != unknown.Str("error_reason") {
		t.Errorf("another client's token is distinguishable from an unknown one: %v vs %v", r.Body, unknown.Body)
	}
	// The owner's family is untouched.
	if r := ts.Refresh(tok.RefreshToken, testserver.WebClient, testserver.WebSecret); r.Status != 200 {
		t.Fatalf("owner refresh after foreign attempt: %d %v", r.Status, r.Body)
	}
}

func TestClientAuthenticationFailures(t *testing.T) {
	ts := testserver.Start(t)
	tok := ts.Login(ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "offline_access"), testserver.Alice, testserver.AlicePW)
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
	for name, tc := range map[string]struct {
		user, pass string
		body       url.Values
	}{
		"bad basic secret":     {user: testserver.WebClient, pass: "wrong-secret-wrong-secret-wrong-secret"},
		"unknown basic client": {user: "nobody", pass: "whatever-secret"},
		"bad post secret":      {body: url.Values{"client_id": {testserver.WebClient}, "client_secret": {"nope-nope-nope"}}},
		"missing secret":       {body: url.Values{"client_id": {testserver.WebClient}}},
		"public with secret":   {body: url.Values{"client_id": {testserver.SPAClient}, "client_secret": {"anything-at-all"}}},
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
			r := ts.Post("/token", f, tc.user, tc.pass)
			testserver.WantError(t, r, http.StatusUnauthorized, "invalid_client")
			if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("WWW-Authenticate = %q", r.Header.Get("WWW-Authenticate"))
			}
		})
	}
	// Two methods at once is a malformed request.
	f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_secret": {testserver.WebSecret}}
	testserver.WantError(t, ts.Post("/token", f, testserver.WebClient, testserver.WebSecret), http.StatusBadRequest, "invalid_request")
	// None of the failures burnt the token.
	if r := ts.Refresh(tok.RefreshToken, testserver.WebClient, testserver.WebSecret); r.Status != 200 {
		t.Fatalf("refresh after failed authentications: %d %v", r.Status, r.Body)
	}
}

func TestMalformedTokenRequests(t *testing.T) {
	ts := testserver.Start(t)
	basic := func(req *http.Request) { req.SetBasicAuth(testserver.WebClient, testserver.WebSecret) }
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
		{"missing code", mk(http.MethodPost, form, "grant_type=authorization_code&redirect_uri="+url.QueryEscape(testserver.Redirect)), 400, "invalid_request"},
		{"missing refresh_token", mk(http.MethodPost, form, "grant_type=refresh_token"), 400, "invalid_request"},
		{"unknown code", mk(http.MethodPost, form, "grant_type=authorization_code&code=lkac_nope&redirect_uri="+url.QueryEscape(testserver.Redirect)), 400, "invalid_grant"},
		{"garbage refresh token", mk(http.MethodPost, form, "grant_type=refresh_token&refresh_token=%00%01"), 400, "invalid_grant"},
		{"params in query", func() *http.Request {
			r := mk(http.MethodPost, form, "grant_type=refresh_token&refresh_token=x")
			r.URL.RawQuery = "client_secret=oops"
			return r
		}(), 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.Do(tc.req)
			testserver.WantError(t, r, tc.status, tc.code)
			if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q", cc)
			}
		})
	}
}

// authStart begins an authorization request for the web client and returns
// the browser's first response.
func authURL(ts *testserver.Server, params url.Values) string {
	return ts.URL + "/authorize?" + params.Encode()
}

func baseParams(clientID string) url.Values {
	v := oauth2.GenerateVerifier()
	return url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {testserver.Redirect}, "scope": {"openid offline_access"},
		"state": {"xyz"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(v)}, "code_challenge_method": {"S256"},
	}
}

func TestAuthorizationRequestErrors(t *testing.T) {
	ts := testserver.Start(t)
	// Errors that must not testserver.Redirect (RFC 6749 §4.1.2.1): shown as a page.
	for name, mod := range map[string]func(url.Values){
		"unknown client":                   func(v url.Values) { v.Set("client_id", "nope") },
		"missing client":                   func(v url.Values) { v.Del("client_id") },
		"unregistered testserver.Redirect": func(v url.Values) { v.Set("redirect_uri", testserver.Redirect+"/x") },
		"redirect prefix match":            func(v url.Values) { v.Set("redirect_uri", "http://localhost:9999/callback?x=1") },
		"missing testserver.Redirect":      func(v url.Values) { v.Del("redirect_uri") },
		"duplicate client_id":              func(v url.Values) { v.Add("client_id", testserver.WebClient) },
	} {
		t.Run(name, func(t *testing.T) {
			p := baseParams(testserver.WebClient)
			mod(p)
			page, res, err := ts.Browser().Get(authURL(ts, p))
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
		"response_type token":   {testserver.WebClient, func(v url.Values) { v.Set("response_type", "token") }, "unsupported_response_type"},
		"missing response_type": {testserver.WebClient, func(v url.Values) { v.Del("response_type") }, "invalid_request"},
		"unknown scope":         {testserver.WebClient, func(v url.Values) { v.Set("scope", "openid admin") }, "invalid_scope"},
		"pkce plain":            {testserver.WebClient, func(v url.Values) { v.Set("code_challenge_method", "plain") }, "invalid_request"},
		"pkce method missing":   {testserver.WebClient, func(v url.Values) { v.Del("code_challenge_method") }, "invalid_request"},
		"public without pkce": {testserver.SPAClient, func(v url.Values) {
			v.Del("code_challenge")
			v.Del("code_challenge_method")
		}, "invalid_request"},
		"prompt none not signed in": {testserver.WebClient, func(v url.Values) { v.Set("prompt", "none") }, "login_required"},
		"request object":            {testserver.WebClient, func(v url.Values) { v.Set("request", "eyJ...") }, "request_not_supported"},
	} {
		t.Run(name, func(t *testing.T) {
			p := baseParams(tc.client)
			tc.mod(p)
			_, res, err := ts.Browser().Get(authURL(ts, p))
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
	ts := testserver.Start(t)
	cfg := ts.OAuth2Config(testserver.SPAClient, "", "openid")
	getCode := func(verifier string) string {
		cb := ts.SignIn(ts.Browser(), cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), testserver.Alice, testserver.AlicePW)
		return cb.Query().Get("code")
	}
	ex := func(code, verifier string) testserver.Response {
		f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testserver.Redirect}, "client_id": {testserver.SPAClient}}
		if verifier != "" {
			f.Set("code_verifier", verifier)
		}
		return ts.Post("/token", f, "", "")
	}
	v := oauth2.GenerateVerifier()
	testserver.WantError(t, ex(getCode(v), oauth2.GenerateVerifier()), 400, "invalid_grant")
	testserver.WantError(t, ex(getCode(v), ""), 400, "invalid_grant")
	testserver.WantError(t, ex(getCode(v), "short"), 400, "invalid_request")
	if r := ex(getCode(v), v); r.Status != 200 {
		t.Fatalf("right verifier: %d %v", r.Status, r.Body)
	}
	// A verifier without a challenge (PKCE downgrade) is refused.
	conf := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid")
	cb := ts.SignIn(ts.Browser(), conf.AuthCodeURL("s"), testserver.Alice, testserver.AlicePW)
	f := url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")}, "redirect_uri": {testserver.Redirect}, "code_verifier": {v}}
	testserver.WantError(t, ts.Post("/token", f, testserver.WebClient, testserver.WebSecret), 400, "invalid_grant")
}

func TestAuthorizationCodeRules(t *testing.T) {
	ts := testserver.Start(t)
	cfg := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "offline_access")
	v := oauth2.GenerateVerifier()
	code := func() string {
		cb := ts.SignIn(ts.Browser(), cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), testserver.Alice, testserver.AlicePW)
		c := cb.Query().Get("code")
		ts.Remember(c)
		return c
	}
	ex := func(code, clientID, secret, redirectURI string) testserver.Response {
		return ts.Post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {v}}, clientID, secret)
	}

	t.Run("replay revokes what the code produced", func(t *testing.T) {
		c := code()
		first := ex(c, testserver.WebClient, testserver.WebSecret, testserver.Redirect)
		if first.Status != 200 {
			t.Fatalf("first exchange: %d %v", first.Status, first.Body)
		}
		testserver.WantError(t, ex(c, testserver.WebClient, testserver.WebSecret, testserver.Redirect), 400, "invalid_grant")
		r := ts.Refresh(first.Str("refresh_token"), testserver.WebClient, testserver.WebSecret)
		testserver.WantError(t, r, 400, "invalid_grant")
		if r.Str("error_reason") != "code_replayed" {
			t.Errorf("error_reason = %q", r.Str("error_reason"))
		}
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+first.Str("access_token"))
		if ui := ts.Do(req); ui.Status != 401 {
			t.Errorf("userinfo with a token from a replayed code: %d", ui.Status)
		}
	})
	t.Run("expires after 60s", func(t *testing.T) {
		c := code()
		ts.Clock.Advance(61 * time.Second)
		testserver.WantError(t, ex(c, testserver.WebClient, testserver.WebSecret, testserver.Redirect), 400, "invalid_grant")
	})
	t.Run("issued to another client", func(t *testing.T) {
		c := code()
		testserver.WantError(t, ex(c, testserver.OtherClient, testserver.OtherSecret, testserver.Redirect), 400, "invalid_grant")
	})
	t.Run("redirect_uri must match", func(t *testing.T) {
		c := code()
		testserver.WantError(t, ex(c, testserver.WebClient, testserver.WebSecret, testserver.Redirect+"x"), 400, "invalid_grant")
	})
}

func TestConsentRememberedAndDeny(t *testing.T) {
	ts := testserver.Start(t)
	cfg := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "offline_access")
	b := ts.Browser()
	// First time: login then consent page.
	page, _, err := b.Get(cfg.AuthCodeURL("s1", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if err != nil || page == nil || page.FormWith("password") == nil {
		t.Fatalf("expected the sign-in page, got %v %v", page, err)
	}
	lf := page.FormWith("password")
	if lf.Inputs["username"]["autocomplete"] != "username" || lf.Inputs["password"]["autocomplete"] != "current-password" {
		t.Errorf("autocomplete attributes: %v", lf.Inputs)
	}
	page, _, err = b.Submit(lf, map[string]string{"username": testserver.Alice, "password": testserver.AlicePW}, "", "")
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
	cb := ts.SignIn(b, cfg.AuthCodeURL("s2", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), testserver.Alice, testserver.AlicePW)
	if cb.Query().Get("code") == "" {
		t.Fatal("no code after allow")
	}
	_, res, err = b.Get(cfg.AuthCodeURL("s3", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if err != nil || res == nil || res.Redirect.Query().Get("code") == "" || res.Redirect.Query().Get("state") != "s3" {
		t.Fatalf("remembered consent should testserver.Redirect at once: %v %v", res, err)
	}
	// prompt=consent asks again.
	page, _, _ = b.Get(cfg.AuthCodeURL("s4", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "consent")))
	if page == nil || page.FormWith("decision") == nil {
		t.Fatal("prompt=consent did not show the consent page")
	}
}

func TestSignInPageSecurity(t *testing.T) {
	ts := testserver.Start(t)
	cfg := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid")
	b := ts.Browser()
	page, _, err := b.Get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if err != nil {
		t.Fatal(err)
	}
	lf := page.FormWith("password")
	// A forged CSRF token is refused.
	bad, _, err := b.Submit(lf, map[string]string{"username": testserver.Alice, "password": testserver.AlicePW, "csrf_token": "forged"}, "", "")
	if err != nil || bad == nil || bad.Status != http.StatusForbidden {
		t.Fatalf("forged CSRF token: %+v %v", bad, err)
	}
	// A fresh browser (no CSRF cookie) posting a stolen token is refused too.
	other := ts.Browser()
	bad, _, err = other.Submit(lf, map[string]string{"username": testserver.Alice, "password": testserver.AlicePW}, "", "")
	if err != nil || bad == nil || bad.Status != http.StatusForbidden {
		t.Fatalf("cross-browser CSRF: %+v %v", bad, err)
	}
	// Wrong password and unknown user look the same.
	p1, _, _ := b.Submit(lf, map[string]string{"username": testserver.Alice, "password": "wrong password"}, "", "")
	p2, _, _ := b.Submit(lf, map[string]string{"username": "mallory", "password": "wrong password"}, "", "")
	if p1.Status != 401 || p2.Status != 401 || !strings.Contains(p1.Body, "incorrect") || !strings.Contains(p2.Body, "incorrect") {
		t.Fatalf("bad credentials: %d %d", p1.Status, p2.Status)
	}
	// Session cookie attributes (read from the response that sets it).
	noFollow := *b.Client
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.PostForm(lf.Action.String(), url.Values{"username": {testserver.Alice}, "password": {testserver.AlicePW}, "csrf_token": lf.Fields["csrf_token"], "request": lf.Fields["request"]})
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
	ts := testserver.StartOn(t, st)
	tok := ts.Login(ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "offline_access"), testserver.Alice, testserver.AlicePW)
	r := ts.Refresh(tok.RefreshToken, testserver.WebClient, testserver.WebSecret)
	var blob []byte
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		blob = append(blob, b...)
	}
	for _, s := range []string{tok.RefreshToken, r.Str("refresh_token"), testserver.WebSecret, testserver.AlicePW, tok.AccessToken[:60]} {
		if strings.Contains(string(blob), s) || strings.Contains(string(blob), strings.TrimPrefix(s, token.RefreshPrefix)) {
			t.Errorf("the database file contains a secret (%.10s…)", s)
		}
	}
}
