package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/dpop/dpoptest"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testserver"
)

// dpopKey is a client's DPoP key on the server's clock.
func dpopKey(t *testing.T, ts *testserver.Server, alg jose.SignatureAlgorithm) *dpoptest.Key {
	k := dpoptest.NewKey(t, alg)
	k.Now = ts.Clock.Now
	return k
}

// dpopContext makes golang.org/x/oauth2 send a DPoP proof with k on every
// request (and retry with a server nonce).
func dpopContext(t *testing.T, k *dpoptest.Key) (context.Context, *dpoptest.Transport) {
	tr := &dpoptest.Transport{T: t, Key: k}
	return context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: tr}), tr
}

// authCode signs Alice in through the real pages and returns a code and its
// PKCE verifier.
func authCode(t *testing.T, ts *testserver.Server, cfg *oauth2.Config, opts ...oauth2.AuthCodeOption) (code, verifier string) {
	t.Helper()
	verifier = oauth2.GenerateVerifier()
	cb := ts.SignIn(ts.Browser(), cfg.AuthCodeURL("st", append(opts, oauth2.S256ChallengeOption(verifier))...), testserver.Alice, testserver.AlicePW)
	code = cb.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %s", cb)
	}
	ts.Remember(code)
	return code, verifier
}

// jwtClaims decodes a JWT's payload without verifying it.
func jwtClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %.20s", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func cnfJKT(m map[string]any) string {
	cnf, _ := m["cnf"].(map[string]any)
	s, _ := cnf["jkt"].(string)
	return s
}

// postDPoP posts form to path with an optional DPoP proof and Basic auth.
func postDPoP(ts *testserver.Server, path string, form url.Values, proof, user, pass string) testserver.Response {
	req, _ := http.NewRequest(http.MethodPost, ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	return ts.Do(req)
}

// dpopUserinfo calls /userinfo with an Authorization header and an optional proof.
func dpopUserinfo(ts *testserver.Server, authorization, proof string) testserver.Response {
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/userinfo", nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	return ts.Do(req)
}

func spaRefresh(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {testserver.SPAClient}}
}

// TestDPoPPublicClientEndToEnd is the whole story of a DPoP-bound public
// client (RFC 9449) driven by golang.org/x/oauth2 with a transport that signs
// proofs: code flow with PKCE and DPoP, a bound access token at userinfo,
// refresh with rotation — and a stolen refresh token that is useless
// without the key.
func TestDPoPPublicClientEndToEnd(t *testing.T) {
	ts := testserver.Start(t)
	k := dpopKey(t, ts, jose.ES256)
	ctx, tr := dpopContext(t, k)
	cfg := ts.OAuth2Config(testserver.SPAClient, "", "openid", "profile", "offline_access")
	code, v := authCode(t, ts, cfg)
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	ts.RememberToken(tok)
	if tok.TokenType != "DPoP" || tok.RefreshToken == "" || tr.Proofs != 1 {
		t.Fatalf("token type %q, refresh %v, proofs %d", tok.TokenType, tok.RefreshToken != "", tr.Proofs)
	}
	if got := cnfJKT(jwtClaims(t, tok.AccessToken)); got != k.JKT {
		t.Fatalf("access token cnf.jkt = %q, want %q", got, k.JKT)
	}

	// Introspection (by a resource server) reports the access token's
	// binding (RFC 9449 §6.2).
	if r := introspect(ts, tok.AccessToken); !active(r) || cnfJKT(r.Body) != k.JKT {
		t.Fatalf("introspection of the access token: %v", r.Body)
	}

	// Userinfo: the DPoP scheme with a proof bound to the token works.
	ui := dpopUserinfo(ts, "DPoP "+tok.AccessToken, k.Proof(t, "GET", ts.URL+"/userinfo", dpoptest.WithToken(tok.AccessToken)))
	if ui.Status != 200 || ui.Str("preferred_username") != testserver.Alice {
		t.Fatalf("userinfo with DPoP: %d %v", ui.Status, ui.Body)
	}
	// ... and is refused as a bearer token, without a proof, with a proof
	// for another token, with a replayed proof, or with another key.
	replayed := k.Proof(t, "GET", ts.URL+"/userinfo", dpoptest.WithToken(tok.AccessToken))
	if r := dpopUserinfo(ts, "DPoP "+tok.AccessToken, replayed); r.Status != 200 {
		t.Fatalf("first use of a proof: %d %v", r.Status, r.Body)
	}
	other := dpopKey(t, ts, jose.ES256)
	for name, tc := range map[string]struct{ auth, proof, code string }{
		"bearer":           {"Bearer " + tok.AccessToken, "", oauth.InvalidToken},
		"bearer and proof": {"Bearer " + tok.AccessToken, k.Proof(t, "GET", ts.URL+"/userinfo", dpoptest.WithToken(tok.AccessToken)), oauth.InvalidToken},
		"no proof":         {"DPoP " + tok.AccessToken, "", oauth.InvalidDPoPProof},
		"no ath":           {"DPoP " + tok.AccessToken, k.Proof(t, "GET", ts.URL+"/userinfo"), oauth.InvalidDPoPProof},
		"other ath":        {"DPoP " + tok.AccessToken, k.Proof(t, "GET", ts.URL+"/userinfo", dpoptest.WithToken("x")), oauth.InvalidDPoPProof},
		"replayed proof":   {"DPoP " + tok.AccessToken, replayed, oauth.InvalidDPoPProof},
		"other key":        {"DPoP " + tok.AccessToken, other.Proof(t, "GET", ts.URL+"/userinfo", dpoptest.WithToken(tok.AccessToken)), oauth.InvalidToken},
		"proof for /token": {"DPoP " + tok.AccessToken, k.Proof(t, "POST", ts.URL+"/token", dpoptest.WithToken(tok.AccessToken)), oauth.InvalidDPoPProof},
	} {
		t.Run("userinfo "+name, func(t *testing.T) {
			r := dpopUserinfo(ts, tc.auth, tc.proof)
			if r.Status != 401 || r.Str("error") != tc.code || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "DPoP ") {
				t.Fatalf("got %d %v %q, want 401 %s with a DPoP challenge", r.Status, r.Body, r.Header.Get("WWW-Authenticate"), tc.code)
			}
		})
	}

	// Refresh through x/oauth2: rotated, still bound, still DPoP.
	old := *tok
	old.Expiry = time.Now().Add(-time.Minute)
	nt, err := cfg.TokenSource(ctx, &old).Token()
	if err != nil {
		t.Fatal(err)
	}
	ts.RememberToken(nt)
	if nt.RefreshToken == tok.RefreshToken || nt.TokenType != "DPoP" || cnfJKT(jwtClaims(t, nt.AccessToken)) != k.JKT {
		t.Fatalf("refreshed token %q type %q", nt.RefreshToken, nt.TokenType)
	}

	// A thief with the refresh token but not the key gets nothing — and
	// ends nothing: the owner goes on refreshing.
	stolen := nt.RefreshToken
	r := ts.Post("/token", spaRefresh(stolen), "", "")
	wantReason(t, r, oauth.ReasonDPoPKeyRequired)
	r = postDPoP(ts, "/token", spaRefresh(stolen), other.Proof(t, "POST", ts.URL+"/token"), "", "")
	wantReason(t, r, oauth.ReasonDPoPKeyMismatch)
	// Presenting the rotated-out predecessor without the key is not reuse
	// either (nothing is learnt about the family).
	ts.Clock.Advance(ts.Config.RefreshGrace.D() + time.Second)
	wantReason(t, ts.Post("/token", spaRefresh(tok.RefreshToken), "", ""), oauth.ReasonDPoPKeyRequired)
	// Nor can the thief revoke it.
	testserver.WantError(t, ts.Post("/revoke", url.Values{"token": {stolen}, "client_id": {testserver.SPAClient}}, "", ""), 400, oauth.InvalidGrant)
	r = postDPoP(ts, "/token", spaRefresh(stolen), k.Proof(t, "POST", ts.URL+"/token"), "", "")
	if r.Status != 200 || r.Str("token_type") != "DPoP" {
		t.Fatalf("owner refresh after the theft attempts: %d %v", r.Status, r.Body)
	}
	// The owner revokes with the key.
	rev := postDPoP(ts, "/revoke", url.Values{"token": {r.Str("refresh_token")}, "client_id": {testserver.SPAClient}}, k.Proof(t, "POST", ts.URL+"/revoke"), "", "")
	if rev.Status != 200 {
		t.Fatalf("revoke with the key: %d %v", rev.Status, rev.Body)
	}
	wantReason(t, postDPoP(ts, "/token", spaRefresh(r.Str("refresh_token")), k.Proof(t, "POST", ts.URL+"/token"), "", ""), oauth.ReasonRevoked)
}

// Every signing algorithm of the allow-list works for DPoP; a proof on an
// unbound family's refresh binds the new access token only.
func TestDPoPAlgorithmsAndUnboundFamilies(t *testing.T) {
	ts := testserver.Start(t)
	for _, alg := range []jose.SignatureAlgorithm{jose.EdDSA, jose.RS256, jose.PS256} {
		t.Run(string(alg), func(t *testing.T) {
			k := dpopKey(t, ts, alg)
			ctx, _ := dpopContext(t, k)
			cfg := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "offline_access")
			code, v := authCode(t, ts, cfg)
			tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(v))
			if err != nil {
				t.Fatal(err)
			}
			ts.RememberToken(tok)
			if tok.TokenType != "DPoP" || cnfJKT(jwtClaims(t, tok.AccessToken)) != k.JKT {
				t.Fatalf("confidential client with DPoP: type %q", tok.TokenType)
			}
			// The refresh token's introspection shows the binding too.
			if r := introspect(ts, tok.RefreshToken); !active(r) || cnfJKT(r.Body) != k.JKT {
				t.Fatalf("introspection of the bound refresh token: %v", r.Body)
			}
			// Client authentication does not replace the key: even the
			// client itself needs the proof.
			wantReason(t, refreshWeb(ts, tok.RefreshToken), oauth.ReasonDPoPKeyRequired)
		})
	}
	// Unbound family: a proof at refresh binds only that access token.
	tok := webLogin(t, ts, testserver.Bob, testserver.BobPW)
	k := dpopKey(t, ts, jose.ES256)
	f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
	r := postDPoP(ts, "/token", f, k.Proof(t, "POST", ts.URL+"/token"), testserver.WebClient, testserver.WebSecret)
	if r.Status != 200 || r.Str("token_type") != "DPoP" || cnfJKT(jwtClaims(t, r.Str("access_token"))) != k.JKT {
		t.Fatalf("unbound family refreshed with a proof: %d %v", r.Status, r.Body)
	}
	if r2 := refreshWeb(ts, r.Str("refresh_token")); r2.Status != 200 || r2.Str("token_type") != "Bearer" {
		t.Fatalf("the family stays unbound: %d %v", r2.Status, r2.Body)
	}
	// An unbound access token with the DPoP scheme is refused.
	if u := dpopUserinfo(ts, "DPoP "+tok.AccessToken, k.Proof(t, "GET", ts.URL+"/userinfo", dpoptest.WithToken(tok.AccessToken))); u.Status != 401 || u.Str("error") != oauth.InvalidToken {
		t.Fatalf("unbound token with the DPoP scheme: %d %v", u.Status, u.Body)
	}
}

// RFC 9449 §10: dpop_jkt in the authorization request binds the code.
func TestDPoPJKTBindsTheCode(t *testing.T) {
	ts := testserver.Start(t)
	k := dpopKey(t, ts, jose.ES256)
	other := dpopKey(t, ts, jose.ES256)
	cfg := ts.OAuth2Config(testserver.SPAClient, "", "openid", "offline_access")
	exchange := func(code, v string, key *dpoptest.Key) testserver.Response {
		f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testserver.Redirect},
			"client_id": {testserver.SPAClient}, "code_verifier": {v}}
		proof := ""
		if key != nil {
			proof = key.Proof(t, "POST", ts.URL+"/token")
		}
		return postDPoP(ts, "/token", f, proof, "", "")
	}
	bind := oauth2.SetAuthURLParam("dpop_jkt", k.JKT)
	code, v := authCode(t, ts, cfg, bind)
	wantReason(t, exchange(code, v, nil), oauth.ReasonDPoPKeyRequired)
	code, v = authCode(t, ts, cfg, bind)
	wantReason(t, exchange(code, v, other), oauth.ReasonDPoPKeyMismatch)
	code, v = authCode(t, ts, cfg, bind)
	if r := exchange(code, v, k); r.Status != 200 || r.Str("token_type") != "DPoP" {
		t.Fatalf("exchange with the bound key: %d %v", r.Status, r.Body)
	}
	// A malformed dpop_jkt is an error sent back to the client.
	p := baseParams(testserver.SPAClient)
	p.Set("dpop_jkt", "not-a-thumbprint")
	_, res, err := ts.Browser().Get(authURL(ts, p))
	if err != nil || res == nil || res.Redirect.Query().Get("error") != oauth.InvalidRequest {
		t.Fatalf("bad dpop_jkt: %v %v", res, err)
	}
}

// A client registered with --require-dpop gets invalid_dpop_proof for any
// token request without a proof.
func TestRequireDPoPClient(t *testing.T) {
	ts := testserver.Start(t)
	cfg := ts.OAuth2Config(testserver.SPAClient, "", "openid", "offline_access")
	tok := ts.Login(cfg, testserver.Alice, testserver.AlicePW) // unbound, before the policy
	yes := true
	if _, err := operator.UpdateClient(context.Background(), ts.Store, testserver.SPAClient, operator.ClientUpdate{RequireDPoP: &yes}, time.Now()); err != nil {
		t.Fatal(err)
	}
	testserver.WantError(t, ts.Post("/token", spaRefresh(tok.RefreshToken), "", ""), 400, oauth.InvalidDPoPProof)
	code, v := authCode(t, ts, cfg)
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testserver.Redirect},
		"client_id": {testserver.SPAClient}, "code_verifier": {v}}
	testserver.WantError(t, ts.Post("/token", f, "", ""), 400, oauth.InvalidDPoPProof)
	// With a proof the old (unbound) family refreshes, its access token bound.
	k := dpopKey(t, ts, jose.EdDSA)
	r := postDPoP(ts, "/token", spaRefresh(tok.RefreshToken), k.Proof(t, "POST", ts.URL+"/token"), "", "")
	if r.Status != 200 || r.Str("token_type") != "DPoP" {
		t.Fatalf("refresh with a proof: %d %v", r.Status, r.Body)
	}
	c, err := ts.Store.GetClient(context.Background(), testserver.SPAClient)
	if err != nil || !c.RequireDPoP {
		t.Fatalf("client %+v %v", c, err)
	}
}

// With nonces required (RFC 9449 §8), the first request gets
// use_dpop_nonce and a DPoP-Nonce header; x/oauth2 with the nonce-aware
// transport then goes through, on this instance or another.
func TestDPoPNonces(t *testing.T) {
	master := make([]byte, 32)
	master[0] = 7
	withNonce := testserver.WithConfig(func(c *config.Config) { c.DPoPRequireNonce = true })
	ts := testserver.Start(t, withNonce, testserver.WithMasterKey(master))
	k := dpopKey(t, ts, jose.ES256)
	r := postDPoP(ts, "/token", spaRefresh("lkrt_x"), k.Proof(t, "POST", ts.URL+"/token"), "", "")
	testserver.WantError(t, r, 400, oauth.UseDPoPNonce)
	nonce := r.Header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("use_dpop_nonce without a DPoP-Nonce header")
	}
	ctx, tr := dpopContext(t, k)
	cfg := ts.OAuth2Config(testserver.SPAClient, "", "openid", "offline_access")
	code, v := authCode(t, ts, cfg)
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	ts.RememberToken(tok)
	if tok.TokenType != "DPoP" {
		t.Fatalf("token type %q", tok.TokenType)
	}
	// A second instance on the same database and master key accepts the
	// nonce the first one issued (stateless nonces).
	ts2 := testserver.StartOn(t, ts.Store, withNonce, testserver.WithMasterKey(master), testserver.WithoutSeed(), testserver.WithClock(ts.Clock))
	f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {testserver.SPAClient}}
	k2 := *k
	r = postDPoP(ts2, "/token", f, k2.Proof(t, "POST", ts2.URL+"/token", dpoptest.WithNonce(nonce)), "", "")
	if r.Status != 200 {
		t.Fatalf("second instance with the first's nonce: %d %v (proofs so far %d)", r.Status, r.Body, tr.Proofs)
	}
}

func TestDiscoveryAdvertisesSenderConstraints(t *testing.T) {
	ts := testserver.Start(t)
	var meta map[string]any
	if err := ts.Provider().Claims(&meta); err != nil {
		t.Fatal(err)
	}
	has := func(k, v string) bool { l, _ := meta[k].([]any); return slices.Contains(l, any(v)) }
	for _, k := range []string{"dpop_signing_alg_values_supported", "token_endpoint_auth_signing_alg_values_supported"} {
		for _, alg := range []string{"ES256", "EdDSA", "RS256", "PS256"} {
			if !has(k, alg) {
				t.Errorf("%s lacks %s: %v", k, alg, meta[k])
			}
		}
		for _, alg := range []string{"none", "HS256"} {
			if has(k, alg) {
				t.Errorf("%s advertises %s", k, alg)
			}
		}
	}
	for _, k := range []string{"token_endpoint_auth_methods_supported", "revocation_endpoint_auth_methods_supported", "introspection_endpoint_auth_methods_supported"} {
		if !has(k, "private_key_jwt") {
			t.Errorf("%s lacks private_key_jwt: %v", k, meta[k])
		}
	}
	if meta["authorization_response_iss_parameter_supported"] != true {
		t.Error("iss parameter not advertised")
	}
}
