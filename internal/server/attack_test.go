package server_test

// The attack suite: the attacks of RFC 9700 (OAuth 2.0 Security Best
// Current Practice) and RFC 6819 run against a real server over HTTP, each
// asserted to be refused. Sections are cited beside each attack.

import (
	"context"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/latchkey-dev/latchkey/internal/dpop"
	"github.com/latchkey-dev/latchkey/internal/dpop/dpoptest"
	"github.com/latchkey-dev/latchkey/internal/flow"
	"github.com/latchkey-dev/latchkey/internal/grant"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/testserver"
)

// exchangeCode posts an authorization_code grant.
func exchangeCode(ts *testserver.Server, code, verifier, clientID, secret, redirectURI string) testserver.Response {
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}
	if verifier != "" {
		f.Set("code_verifier", verifier)
	}
	if secret == "" {
		f.Set("client_id", clientID)
		return ts.Post("/token", f, "", "")
	}
	return ts.Post("/token", f, clientID, secret)
}

// RFC 9700 §4.5: authorization code injection — a code stolen from one
// client or session and redeemed by another, or with another PKCE verifier.
func TestAttackCodeInjection(t *testing.T) {
	ts := testserver.Start(t)
	web := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "offline_access")
	spa := ts.OAuth2Config(testserver.SPAClient, "", "openid", "offline_access")

	t.Run("stolen code redeemed by another client", func(t *testing.T) {
		code, v := authCode(t, ts, web)
		testserver.WantError(t, exchangeCode(ts, code, v, testserver.OtherClient, testserver.OtherSecret, testserver.Redirect), 400, oauth.InvalidGrant)
		testserver.WantError(t, exchangeCode(ts, code, v, testserver.SPAClient, "", testserver.Redirect), 400, oauth.InvalidGrant)
	})
	t.Run("stolen code injected into the attacker's session (other verifier)", func(t *testing.T) {
		code, _ := authCode(t, ts, spa)
		attackerVerifier := oauth2.GenerateVerifier()
		testserver.WantError(t, exchangeCode(ts, code, attackerVerifier, testserver.SPAClient, "", testserver.Redirect), 400, oauth.InvalidGrant)
	})
	t.Run("stolen code without the verifier", func(t *testing.T) {
		code, _ := authCode(t, ts, web)
		testserver.WantError(t, exchangeCode(ts, code, "", testserver.WebClient, testserver.WebSecret, testserver.Redirect), 400, oauth.InvalidGrant)
	})
	t.Run("code from a confidential client's flow by its own client with another redirect", func(t *testing.T) {
		code, v := authCode(t, ts, web)
		testserver.WantError(t, exchangeCode(ts, code, v, testserver.WebClient, testserver.WebSecret, "http://localhost:9999/other"), 400, oauth.InvalidGrant)
	})
	t.Run("guessed codes", func(t *testing.T) {
		for _, c := range []string{"lkac_", "lkac_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "' OR 1=1 --", strings.Repeat("a", 300)} {
			testserver.WantError(t, exchangeCode(ts, c, oauth2.GenerateVerifier(), testserver.WebClient, testserver.WebSecret, testserver.Redirect), 400, oauth.InvalidGrant)
		}
	})
}

// RFC 9700 §2.1.1, §4.8: PKCE downgrade — a verifier without a challenge,
// the plain method, a public client without PKCE.
func TestAttackPKCEDowngrade(t *testing.T) {
	ts := testserver.Start(t)
	web := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid")
	t.Run("verifier without challenge", func(t *testing.T) {
		cb := ts.SignIn(ts.Browser(), web.AuthCodeURL("s"), testserver.Alice, testserver.AlicePW)
		r := exchangeCode(ts, cb.Query().Get("code"), oauth2.GenerateVerifier(), testserver.WebClient, testserver.WebSecret, testserver.Redirect)
		testserver.WantError(t, r, 400, oauth.InvalidGrant)
	})
	for name, mod := range map[string]func(url.Values){
		"plain": func(v url.Values) {
			v.Set("code_challenge_method", "plain")
			v.Set("code_challenge", oauth2.GenerateVerifier())
		},
		"method missing":   func(v url.Values) { v.Del("code_challenge_method") },
		"unknown method":   func(v url.Values) { v.Set("code_challenge_method", "S512") },
		"public, no PKCE":  func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") },
		"short challenge":  func(v url.Values) { v.Set("code_challenge", "abc") },
		"method, no value": func(v url.Values) { v.Del("code_challenge") },
	} {
		t.Run(name, func(t *testing.T) {
			p := baseParams(testserver.SPAClient)
			mod(p)
			_, res, err := ts.Browser().Get(authURL(ts, p))
			if err != nil || res == nil || res.Redirect.Query().Get("error") != oauth.InvalidRequest {
				t.Fatalf("got %v %v, want an invalid_request redirect", res, err)
			}
		})
	}
	var meta map[string]any
	_ = ts.Provider().Claims(&meta)
	if m, _ := meta["code_challenge_methods_supported"].([]any); len(m) != 1 || m[0] != "S256" {
		t.Errorf("code_challenge_methods_supported = %v", meta["code_challenge_methods_supported"])
	}
}

// RFC 9700 §4.14: refresh token replay and theft by another client.
func TestAttackRefreshTokenReplayAndTheft(t *testing.T) {
	ts := testserver.Start(t)
	t.Run("replay after rotation revokes the family", func(t *testing.T) {
		tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
		r1 := mustRefresh(t, ts, tok.RefreshToken)
		ts.Clock.Advance(ts.Config.RefreshGrace.D() + time.Second)
		wantReason(t, refreshWeb(ts, tok.RefreshToken), oauth.ReasonReused)
		// The legitimate current token died with the family.
		wantReason(t, refreshWeb(ts, r1.Str("refresh_token")), oauth.ReasonReused)
		if active(introspect(ts, r1.Str("access_token"))) {
			t.Error("access token of a reused family is active")
		}
	})
	t.Run("another client presents a stolen refresh token", func(t *testing.T) {
		tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
		r := ts.Refresh(tok.RefreshToken, testserver.OtherClient, testserver.OtherSecret)
		wantReason(t, r, oauth.ReasonUnknown)
		r = ts.Refresh(tok.RefreshToken, testserver.SPAClient, "")
		wantReason(t, r, oauth.ReasonUnknown)
		mustRefresh(t, ts, tok.RefreshToken) // the owner is unaffected
	})
	t.Run("stolen refresh token without client credentials", func(t *testing.T) {
		tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
		r := ts.Post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {testserver.WebClient}}, "", "")
		testserver.WantError(t, r, 401, oauth.InvalidClient)
		mustRefresh(t, ts, tok.RefreshToken)
	})
	t.Run("forged refresh tokens", func(t *testing.T) {
		tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
		b := []byte(tok.RefreshToken)
		b[len(b)-5] ^= 1
		for _, f := range []string{string(b), tok.RefreshToken + "A", "lkrt_" + strings.Repeat("A", 78)} {
			wantReason(t, refreshWeb(ts, f), oauth.ReasonUnknown)
		}
	})
}

// RFC 9449 via RFC 9700 §4.10.1: a DPoP-bound refresh token stolen with
// nothing else, or used with the thief's own key.
func TestAttackStolenDPoPBoundRefreshToken(t *testing.T) {
	ts := testserver.Start(t)
	k := dpopKey(t, ts, jose.EdDSA)
	ctx, _ := dpopContext(t, k)
	cfg := ts.OAuth2Config(testserver.SPAClient, "", "openid", "offline_access")
	code, v := authCode(t, ts, cfg)
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	ts.RememberToken(tok)
	thief := dpopKey(t, ts, jose.EdDSA)
	wantReason(t, ts.Post("/token", spaRefresh(tok.RefreshToken), "", ""), oauth.ReasonDPoPKeyRequired)
	wantReason(t, postDPoP(ts, "/token", spaRefresh(tok.RefreshToken), thief.Proof(t, "POST", ts.URL+"/token"), "", ""), oauth.ReasonDPoPKeyMismatch)
	// A proof the owner made for another request, or an old one, is no key.
	for name, p := range map[string]string{
		"proof for /userinfo": k.Proof(t, "GET", ts.URL+"/userinfo"),
		"proof for /revoke":   k.Proof(t, "POST", ts.URL+"/revoke"),
		"stale proof":         k.Proof(t, "POST", ts.URL+"/token", dpoptest.Set("iat", ts.Clock.Now().Add(-5*time.Minute).Unix())),
	} {
		r := postDPoP(ts, "/token", spaRefresh(tok.RefreshToken), p, "", "")
		if r.Str("error") != oauth.InvalidDPoPProof {
			t.Errorf("%s: %d %v", name, r.Status, r.Body)
		}
	}
	// A proof seen once (captured in transit) cannot be replayed.
	p := k.Proof(t, "POST", ts.URL+"/token")
	first := postDPoP(ts, "/token", spaRefresh(tok.RefreshToken), p, "", "")
	if first.Status != 200 {
		t.Fatalf("owner: %d %v", first.Status, first.Body)
	}
	testserver.WantError(t, postDPoP(ts, "/token", spaRefresh(first.Str("refresh_token")), p, "", ""), 400, oauth.InvalidDPoPProof)
	// The stolen access token is no bearer token either.
	if r := dpopUserinfo(ts, "Bearer "+first.Str("access_token"), ""); r.Status != 401 {
		t.Fatalf("bound access token as a bearer token: %d", r.Status)
	}
}

// RFC 9700 §4.1, §2.1: redirect URI manipulation and open redirects. Every
// variant of the registered URI is refused and shown to the user, never
// redirected — even when the request has another error that would
// otherwise go to the client.
func TestAttackRedirectURIManipulation(t *testing.T) {
	ts := testserver.Start(t)
	for name, uri := range map[string]string{
		"prefix (longer path)":   testserver.Redirect + "/evil",
		"suffix on the path":     testserver.Redirect + "x",
		"prefix of the URI":      strings.TrimSuffix(testserver.Redirect, "k"),
		"query added":            testserver.Redirect + "?next=https://evil.example",
		"fragment added":         testserver.Redirect + "#x",
		"path traversal":         "http://localhost:9999/callback/../evil",
		"encoded traversal":      "http://localhost:9999/callback/%2e%2e/evil",
		"different port":         "http://localhost:9998/callback",
		"no port":                "http://localhost/callback",
		"userinfo@host":          "http://localhost:9999@evil.example/callback",
		"host as userinfo":       "http://evil.example@localhost:9999/callback",
		"other host":             "http://evil.example/callback",
		"https":                  "https://localhost:9999/callback",
		"upper-case host":        "http://LOCALHOST:9999/callback",
		"trailing slash":         testserver.Redirect + "/",
		"127.0.0.1 for loopback": "http://127.0.0.1:9999/callback",
		"javascript":             "javascript:alert(1)",
		"backslash":              `http://localhost:9999\@evil.example/callback`,
	} {
		t.Run(name, func(t *testing.T) {
			for _, extra := range []func(url.Values){
				func(url.Values) {},
				// An error that is redirected for a valid redirect URI must
				// not turn an unregistered one into an open redirector.
				func(v url.Values) { v.Set("response_type", "token") },
				func(v url.Values) { v.Set("scope", "admin") },
				func(v url.Values) { v.Set("prompt", "none") },
			} {
				p := baseParams(testserver.WebClient)
				p.Set("redirect_uri", uri)
				extra(p)
				page, res, err := ts.Browser().Get(authURL(ts, p))
				if err != nil {
					t.Fatal(err)
				}
				if res != nil {
					t.Fatalf("redirected to %s", res.Redirect)
				}
				if page.Status != 400 || !strings.Contains(page.Body, "<html") {
					t.Fatalf("status %d", page.Status)
				}
			}
		})
	}
	t.Run("errors before the client is known are shown", func(t *testing.T) {
		for name, mod := range map[string]func(url.Values){
			"unknown client":            func(v url.Values) { v.Set("client_id", "evil-client") },
			"unknown client, bad scope": func(v url.Values) { v.Set("client_id", "evil-client"); v.Set("scope", "admin") },
			"missing redirect":          func(v url.Values) { v.Del("redirect_uri") },
			"repeated redirect":         func(v url.Values) { v.Add("redirect_uri", "http://evil.example/cb") },
			"oversized state":           func(v url.Values) { v.Set("client_id", "x"); v.Set("state", strings.Repeat("s", 5000)) },
			"another client's redirect": func(v url.Values) {
				v.Set("client_id", testserver.OtherClient)
				v.Set("redirect_uri", "http://localhost:9999/other")
			},
			"malformed query":            nil,
			"redirect of another client": func(v url.Values) { v.Set("redirect_uri", "http://localhost:9999/elsewhere") },
		} {
			t.Run(name, func(t *testing.T) {
				target := ""
				if mod == nil {
					target = ts.URL + "/authorize?client_id=%zz&redirect_uri=" + url.QueryEscape(testserver.Redirect)
				} else {
					p := baseParams(testserver.WebClient)
					mod(p)
					target = authURL(ts, p)
				}
				_, res, err := ts.Browser().Get(target)
				if err != nil || res != nil {
					t.Fatalf("redirected: %v %v", res, err)
				}
			})
		}
	})
}

// RFC 9207 via RFC 9700 §4.4: mix-up. Every authorization response — code
// and error — carries iss, equal to the issuer in discovery.
func TestAttackMixUpIssuerParameter(t *testing.T) {
	ts := testserver.Start(t)
	var meta map[string]any
	_ = ts.Provider().Claims(&meta)
	if meta["issuer"] != ts.URL || meta["authorization_response_iss_parameter_supported"] != true {
		t.Fatalf("discovery: issuer %v, iss supported %v", meta["issuer"], meta["authorization_response_iss_parameter_supported"])
	}
	cfg := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid")
	b := ts.Browser()
	cb := ts.SignIn(b, cfg.AuthCodeURL("s1", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), testserver.Alice, testserver.AlicePW)
	if cb.Query().Get("code") == "" || cb.Query().Get("iss") != ts.URL || cb.Query().Get("state") != "s1" {
		t.Fatalf("success response %s", cb)
	}
	for name, p := range map[string]url.Values{
		"error":       func() url.Values { p := baseParams(testserver.WebClient); p.Set("response_type", "token"); return p }(),
		"prompt none": func() url.Values { p := baseParams(testserver.WebClient); p.Set("prompt", "none"); return p }(),
	} {
		_, res, err := ts.Browser().Get(authURL(ts, p))
		if err != nil || res == nil || res.Redirect.Query().Get("iss") != ts.URL || res.Redirect.Query().Get("error") == "" {
			t.Errorf("%s: %v %v", name, res, err)
		}
	}
	// Access denied on the consent page, too.
	b2 := ts.Browser()
	page, _, _ := b2.Get(cfg.AuthCodeURL("s2", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "consent")))
	page, _, _ = b2.Submit(page.FormWith("password"), map[string]string{"username": testserver.Bob, "password": testserver.BobPW}, "", "")
	_, res, err := b2.Submit(page.FormWith("decision"), nil, "decision", "deny")
	if err != nil || res == nil || res.Redirect.Query().Get("iss") != ts.URL || res.Redirect.Query().Get("error") != oauth.AccessDenied {
		t.Fatalf("deny: %v %v", res, err)
	}
}

// RFC 9700 §4.7, RFC 6819 §4.4.1.8: CSRF on every form — sign-in, consent,
// sign-out and the account page's — with a forged token, a token from
// another browser, no token, and a cross-site post.
func TestAttackCSRFOnForms(t *testing.T) {
	ts := testserver.Start(t)
	cfg := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid")
	victim := ts.Browser()
	page, _, err := victim.Get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if err != nil {
		t.Fatal(err)
	}
	login := page.FormWith("password")
	page, _, err = victim.Submit(login, map[string]string{"username": testserver.Alice, "password": testserver.AlicePW}, "", "")
	if err != nil || page == nil || page.FormWith("decision") == nil {
		t.Fatalf("no consent page: %v", err)
	}
	consent := page.FormWith("decision")
	acct, _, err := victim.Get(ts.URL + "/account")
	if err != nil || acct.Status != 200 {
		t.Fatalf("account page: %v", err)
	}
	signout := acct.Forms[0]
	forms := map[string]struct {
		f      *flow.Form
		fields map[string]string
		button [2]string
	}{
		"sign-in":  {login, map[string]string{"username": testserver.Bob, "password": testserver.BobPW}, [2]string{}},
		"consent":  {consent, nil, [2]string{"decision", "allow"}},
		"sign-out": {signout, nil, [2]string{}},
	}
	attacker := ts.Browser()
	for name, fm := range forms {
		t.Run(name, func(t *testing.T) {
			for how, submit := range map[string]func() (*flow.Page, *flow.Result, error){
				"forged token": func() (*flow.Page, *flow.Result, error) {
					f := mergeFields(fm.fields, "csrf_token", "forged")
					return victim.Submit(fm.f, f, fm.button[0], fm.button[1])
				},
				"no token": func() (*flow.Page, *flow.Result, error) {
					f := *fm.f
					f.Fields = cloneWithout(fm.f.Fields, "csrf_token")
					return victim.Submit(&f, fm.fields, fm.button[0], fm.button[1])
				},
				"token from another browser": func() (*flow.Page, *flow.Result, error) {
					return attacker.Submit(fm.f, fm.fields, fm.button[0], fm.button[1])
				},
			} {
				page, res, err := submit()
				if err != nil || res != nil || page == nil || page.Status != http.StatusForbidden {
					t.Errorf("%s: %+v %v %v", how, page, res, err)
				}
			}
			// A cross-site post (what a malicious page would make the
			// victim's browser send) is refused before any handler runs.
			v := url.Values{}
			for k, vs := range fm.f.Fields {
				v[k] = vs
			}
			req, _ := http.NewRequest(http.MethodPost, fm.f.Action.String(), strings.NewReader(v.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			resp, err := victim.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("cross-site post: %d", resp.StatusCode)
			}
		})
	}
	// The account page's revoke form, once the victim has an app.
	victim.Submit(consent, nil, "decision", "allow")
	acct, _, _ = victim.Get(ts.URL + "/account")
	rev := acct.FormWith("client_id")
	if rev == nil {
		t.Fatal("no revoke form on the account page")
	}
	if p, _, _ := victim.Submit(rev, map[string]string{"csrf_token": "forged"}, "", ""); p == nil || p.Status != http.StatusForbidden {
		t.Errorf("account revoke with a forged token: %+v", p)
	}
	if p, _, _ := attacker.Submit(rev, nil, "", ""); p == nil || p.Status != http.StatusForbidden {
		t.Errorf("account revoke from another browser: %+v", p)
	}
	// The consent survived every attempt.
	grants, _ := ts.Store.ListConsents(context.Background(), mustUserID(t, ts, testserver.Alice))
	if len(grants) != 1 {
		t.Errorf("consents after the CSRF attempts: %d", len(grants))
	}
}

func mergeFields(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for kk, vv := range m {
		out[kk] = vv
	}
	return out
}

func cloneWithout(v url.Values, drop string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		if k != drop {
			out[k] = vs
		}
	}
	return out
}

func mustUserID(t *testing.T, ts *testserver.Server, username string) string {
	u, err := ts.Store.GetUserByUsername(context.Background(), username)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// RFC 9700 §4.2.4, RFC 6749 §4.1.2: a code is used once; a replay is
// refused and revokes what the first redemption produced.
func TestAttackAuthorizationCodeReplay(t *testing.T) {
	ts := testserver.Start(t)
	cfg := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "offline_access")
	code, v := authCode(t, ts, cfg)
	first := exchangeCode(ts, code, v, testserver.WebClient, testserver.WebSecret, testserver.Redirect)
	if first.Status != 200 {
		t.Fatalf("first: %d %v", first.Status, first.Body)
	}
	testserver.WantError(t, exchangeCode(ts, code, v, testserver.WebClient, testserver.WebSecret, testserver.Redirect), 400, oauth.InvalidGrant)
	wantReason(t, refreshWeb(ts, first.Str("refresh_token")), oauth.ReasonCodeReplayed)
	if active(introspect(ts, first.Str("access_token"))) {
		t.Error("access token of a replayed code is active")
	}
	// Concurrent redemptions: at most one wins.
	code, v = authCode(t, ts, cfg)
	results := make(chan int, 8)
	for range 8 {
		go func() {
			results <- exchangeCode(ts, code, v, testserver.WebClient, testserver.WebSecret, testserver.Redirect).Status
		}()
	}
	wins := 0
	for range 8 {
		if <-results == 200 {
			wins++
		}
	}
	if wins > 1 {
		t.Fatalf("%d concurrent redemptions of one code succeeded", wins)
	}
}

// RFC 7009 §2.1, RFC 7662 §2.1: token_type_hint is only a lookup hint. A
// wrong, unknown or misleading hint neither hides a token from revocation
// nor lets a client act on another client's token.
func TestAttackTokenTypeHint(t *testing.T) {
	ts := testserver.Start(t)
	revoke := func(tok, hint, client, secret string) testserver.Response {
		return ts.Post("/revoke", url.Values{"token": {tok}, "token_type_hint": {hint}}, client, secret)
	}
	for _, hint := range []string{"access_token", "refresh_token", "id_token", "bogus", strings.Repeat("h", 1000)} {
		t.Run("hint "+hint[:min(len(hint), 16)], func(t *testing.T) {
			tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
			// Another client cannot revoke either token, whatever the hint.
			testserver.WantError(t, revoke(tok.RefreshToken, hint, testserver.OtherClient, testserver.OtherSecret), 400, oauth.UnauthorizedClient)
			testserver.WantError(t, revoke(tok.AccessToken, hint, testserver.OtherClient, testserver.OtherSecret), 400, oauth.UnauthorizedClient)
			// Introspection with any hint tells the truth; another client
			// never sees a refresh token.
			if !active(ts.Post("/introspect", url.Values{"token": {tok.RefreshToken}, "token_type_hint": {hint}}, testserver.WebClient, testserver.WebSecret)) {
				t.Error("refresh token hidden by a hint")
			}
			if active(ts.Post("/introspect", url.Values{"token": {tok.RefreshToken}, "token_type_hint": {hint}}, testserver.OtherClient, testserver.OtherSecret)) {
				t.Error("another client saw a refresh token through a hint")
			}
			// The owner revokes the access token and the refresh token
			// whatever the hint says.
			if r := revoke(tok.AccessToken, hint, testserver.WebClient, testserver.WebSecret); r.Status != 200 {
				t.Fatalf("revoke access token: %d %v", r.Status, r.Body)
			}
			if active(introspect(ts, tok.AccessToken)) {
				t.Error("access token survived its revocation")
			}
			if r := revoke(tok.RefreshToken, hint, testserver.WebClient, testserver.WebSecret); r.Status != 200 {
				t.Fatalf("revoke refresh token: %d %v", r.Status, r.Body)
			}
			wantReason(t, refreshWeb(ts, tok.RefreshToken), oauth.ReasonRevoked)
		})
	}
}

// RFC 9700 §2.7 / RFC 6819 §5.1.5: forged access tokens — alg none and
// HS256 keyed with the server's public key (algorithm confusion), an ID
// token, a token signed by another server — at userinfo and introspection.
func TestAttackForgedAccessTokens(t *testing.T) {
	ts := testserver.Start(t)
	tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
	id, _ := tok.Extra("id_token").(string)
	stranger := testserver.Start(t)
	foreign := webLogin(t, stranger, testserver.Alice, testserver.AlicePW)
	forged := map[string]string{
		"ID token":               id,
		"another server's token": foreign.AccessToken,
		"truncated signature":    tok.AccessToken[:len(tok.AccessToken)-10],
	}
	for name, f := range forgedVariants(t, ts, tok.AccessToken) {
		forged[name] = f
	}
	for name, f := range forged {
		t.Run(name, func(t *testing.T) {
			if r := dpopUserinfo(ts, "Bearer "+f, ""); r.Status != 401 || r.Str("error") != oauth.InvalidToken {
				t.Errorf("userinfo: %d %v", r.Status, r.Body)
			}
			if r := introspect(ts, f); r.Status != 200 || active(r) {
				t.Errorf("introspection: %d %v", r.Status, r.Body)
			}
		})
	}
	if r := dpopUserinfo(ts, "Bearer "+tok.AccessToken, ""); r.Status != 200 {
		t.Fatalf("the genuine token: %d %v", r.Status, r.Body)
	}
}

// RFC 6819 §5.1.4.2, §3.1: every input is size-limited — oversized bodies,
// headers, parameters and tokens are refused early and cleanly.
func TestAttackOversizedInputs(t *testing.T) {
	ts := testserver.Start(t)
	big := strings.Repeat("A", 70<<10)
	t.Run("token endpoint body", func(t *testing.T) {
		r := ts.Post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {big}}, testserver.WebClient, testserver.WebSecret)
		testserver.WantError(t, r, http.StatusRequestEntityTooLarge, oauth.InvalidRequest)
		r = ts.Post("/revoke", url.Values{"token": {big}}, testserver.WebClient, testserver.WebSecret)
		testserver.WantError(t, r, http.StatusRequestEntityTooLarge, oauth.InvalidRequest)
		r = ts.Post("/introspect", url.Values{"token": {big}}, testserver.WebClient, testserver.WebSecret)
		testserver.WantError(t, r, http.StatusRequestEntityTooLarge, oauth.InvalidRequest)
	})
	t.Run("tokens and codes within the body limit", func(t *testing.T) {
		long := strings.Repeat("A", 20<<10)
		wantReason(t, refreshWeb(ts, "lkrt_"+long), oauth.ReasonUnknown)
		testserver.WantError(t, exchangeCode(ts, "lkac_"+long, "", testserver.WebClient, testserver.WebSecret, testserver.Redirect), 400, oauth.InvalidGrant)
		if r := introspect(ts, long); active(r) || r.Status != 200 {
			t.Errorf("introspect: %d %v", r.Status, r.Body)
		}
		testserver.WantError(t, ts.Post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {long}}, "", ""), 401, oauth.InvalidClient)
		testserver.WantError(t, ts.Post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, testserver.WebClient, long), 401, oauth.InvalidClient)
		f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_assertion_type": {grant.ClientAssertionType}, "client_assertion": {long}}
		testserver.WantError(t, ts.Post("/token", f, "", ""), 401, oauth.InvalidClient)
	})
	t.Run("DPoP header", func(t *testing.T) {
		r := postDPoP(ts, "/token", spaRefresh("lkrt_x"), strings.Repeat("A", dpop.MaxProofLen+1), "", "")
		testserver.WantError(t, r, 400, oauth.InvalidDPoPProof)
	})
	t.Run("Authorization header at userinfo", func(t *testing.T) {
		r := dpopUserinfo(ts, "Bearer "+strings.Repeat("A", 10<<10), "")
		if r.Status != 400 || r.Str("error") != oauth.InvalidRequest {
			t.Errorf("got %d %v", r.Status, r.Body)
		}
	})
	t.Run("authorization request", func(t *testing.T) {
		p := baseParams(testserver.WebClient)
		p.Set("nonce", strings.Repeat("n", 20<<10))
		page, res, err := ts.Browser().Get(authURL(ts, p))
		if err != nil || res != nil || page.Status != 400 {
			t.Errorf("oversized query: %v %v", res, err)
		}
		for name, mod := range map[string]func(url.Values){
			"state": func(v url.Values) { v.Set("state", strings.Repeat("s", 3000)) },
			"nonce": func(v url.Values) { v.Set("nonce", strings.Repeat("n", 600)) },
			"scope": func(v url.Values) { v.Set("scope", strings.Repeat("openid ", 200)) },
		} {
			p := baseParams(testserver.WebClient)
			mod(p)
			_, res, err := ts.Browser().Get(authURL(ts, p))
			if err != nil || res == nil || res.Redirect.Query().Get("error") == "" {
				t.Errorf("%s: %v %v", name, res, err)
			}
		}
	})
	t.Run("sign-in form", func(t *testing.T) {
		cfg := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid")
		b := ts.Browser()
		page, _, _ := b.Get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		p, _, err := b.Submit(page.FormWith("password"), map[string]string{"username": testserver.Alice, "password": strings.Repeat("p", 2000)}, "", "")
		if err != nil || p == nil || p.Status != 400 {
			t.Errorf("oversized password: %+v %v", p, err)
		}
	})
}

// RFC 9700 §4.16 (clickjacking) and §4.2 (referrer leaks): every HTML page
// carries the security headers.
func TestSecurityHeadersOnEveryPage(t *testing.T) {
	ts := testserver.Start(t)
	cfg := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid")
	b := ts.Browser()
	noFollow := *b.Client
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	check := func(name string, resp *http.Response) {
		t.Helper()
		resp.Body.Close()
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %s is not a page", name, resp.StatusCode, resp.Header.Get("Content-Type"))
			return
		}
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") ||
			h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("Referrer-Policy") != "no-referrer" || h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: headers %v", name, h)
		}
	}
	get := func(name, u string) {
		t.Helper()
		resp, err := noFollow.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		check(name, resp)
	}
	get("home", ts.URL+"/")
	get("error page (bad authorization request)", ts.URL+"/authorize?client_id=nobody")
	get("error page (expired sign-in request)", ts.URL+"/login?request=nope")
	get("not found", ts.URL+"/authorize/continue?request=x")
	page, _, _ := b.Get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	get("sign-in", page.URL.String())
	lf := page.FormWith("password")
	resp, err := noFollow.PostForm(lf.Action.String(), url.Values{"username": {"x"}, "password": {"wrong password"}, "csrf_token": lf.Fields["csrf_token"], "request": lf.Fields["request"]})
	if err != nil {
		t.Fatal(err)
	}
	check("sign-in failed", resp)
	page, _, _ = b.Submit(lf, map[string]string{"username": testserver.Alice, "password": testserver.AlicePW}, "", "")
	get("consent", page.URL.String())
	get("account", ts.URL+"/account")
	get("MFA setup", ts.URL+"/account/mfa/setup")
	resp, err = noFollow.PostForm(ts.URL+"/account/revoke", url.Values{"csrf_token": {"forged"}})
	if err != nil {
		t.Fatal(err)
	}
	check("refused form post", resp)
}

// forgedVariants forges the classic JWT attacks from a valid access token
// of ts, against every key ts publishes (the server keeps keys of several
// algorithms: an attacker may name any of them): alg none (with and
// without the old signature), HS256 keyed with the key's public JWK or,
// for RSA, its PKCS#1 DER (algorithm confusion), a header naming the key
// with another algorithm, and an unknown key.
func forgedVariants(t *testing.T, ts *testserver.Server, valid string) map[string]string {
	t.Helper()
	parts := strings.Split(valid, ".")
	resp, err := http.Get(ts.URL + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	header := func(alg, kid string) string { return enc(map[string]any{"alg": alg, "typ": "at+jwt", "kid": kid}) }
	hs := func(kid string, key []byte) string {
		in := header("HS256", kid) + "." + parts[1]
		m := hmac.New(sha256.New, key)
		m.Write([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	out := map[string]string{
		"unknown kid":    header("ES256", "unknown") + "." + parts[1] + "." + parts[2],
		"claims changed": parts[0] + "." + enc(map[string]any{"iss": ts.URL, "sub": "someone-else", "exp": time.Now().Add(time.Hour).Unix()}) + "." + parts[2],
	}
	var signer struct{ Alg, Kid string }
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	_ = json.Unmarshal(hb, &signer)
	algs := map[string]bool{}
	for _, k := range set.Keys {
		kid, alg := k.KeyID, k.Algorithm
		algs[alg] = true
		if alg == signer.Alg && kid != signer.Kid {
			out["signed by "+signer.Kid+", naming "+alg+" key "+kid] = header(alg, kid) + "." + parts[1] + "." + parts[2]
		}
		pubJSON, _ := k.MarshalJSON()
		out["alg none, "+alg+" key "+kid] = header("none", kid) + "." + parts[1] + "."
		out["alg none, signature kept, "+alg+" key "+kid] = header("none", kid) + "." + parts[1] + "." + parts[2]
		out["HS256 with the public JWK of "+alg+" key "+kid] = hs(kid, pubJSON)
		if rk, ok := k.Key.(*rsa.PublicKey); ok {
			out["HS256 with the public key (PKCS#1 DER) of "+kid] = hs(kid, x509.MarshalPKCS1PublicKey(rk))
		}
		for _, other := range []string{"RS256", "ES256", "EdDSA", "PS256"} {
			if other != alg {
				out["alg "+other+" on the "+alg+" key "+kid] = header(other, kid) + "." + parts[1] + "." + parts[2]
			}
		}
	}
	if !algs["RS256"] || !algs["ES256"] {
		t.Fatalf("the JWKS lacks RS256 or ES256 keys: %v", algs)
	}
	return out
}
