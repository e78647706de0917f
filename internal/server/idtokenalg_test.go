package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/testserver"
)

// Signing algorithms per token kind and per client: access tokens always
// with signing_alg (ES256 by default), ID tokens with the client's
// id_token_signed_response_alg or signing_alg; RS256 always available for
// ID tokens (OIDC Core §15.1).

// algOf returns the alg and kid of a JWS's header.
func algOf(t *testing.T, raw string) (alg, kid string) {
	t.Helper()
	h, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct{ Alg, Kid string }
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Alg, hdr.Kid
}

// discoveredAlgs returns id_token_signing_alg_values_supported.
func discoveredAlgs(t *testing.T, ts *testserver.Server) []string {
	t.Helper()
	var meta struct {
		Algs []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := ts.Provider().Claims(&meta); err != nil {
		t.Fatal(err)
	}
	return meta.Algs
}

// addClient registers a public client with the given ID token algorithm,
// validated against the server's key algorithms as the CLI does.
func addClient(t *testing.T, ts *testserver.Server, id, alg string) *oauth2.Config {
	t.Helper()
	_, err := operator.CreateClient(context.Background(), ts.Store, operator.ClientSpec{ID: id, Public: true,
		RedirectURIs: []string{testserver.Redirect}, IDTokenAlg: alg, KeyAlgs: ts.Config.KeyAlgorithms()}, time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	return ts.OAuth2Config(id, "", "openid", "profile", "offline_access")
}

// checkTokens checks the algorithms of a token response's access and ID
// tokens, verifies the ID token (and its at_hash) with go-oidc configured
// from discovery, and with a verifier that accepts only wantID (an RP that
// supports just that algorithm).
func checkTokens(t *testing.T, ts *testserver.Server, clientID string, tok *oauth2.Token, wantAccess, wantID string) {
	t.Helper()
	if alg, _ := algOf(t, tok.AccessToken); alg != wantAccess {
		t.Errorf("access token signed with %s, want %s", alg, wantAccess)
	}
	raw, _ := tok.Extra("id_token").(string)
	if alg, _ := algOf(t, raw); alg != wantID {
		t.Errorf("ID token signed with %s, want %s", alg, wantID)
	}
	verifyID(t, ts, clientID, tok) // discovery's algorithms; checks at_hash
	only := ts.Provider().Verifier(&oidc.Config{ClientID: clientID, Now: ts.Clock.Now, SupportedSigningAlgs: []string{wantID}})
	if _, err := only.Verify(context.Background(), raw); err != nil {
		t.Errorf("a %s-only relying party: %v", wantID, err)
	}
	// The access token works at userinfo and introspection whatever the
	// ID token's algorithm.
	if r := userinfo(ts, tok.AccessToken); r.Status != 200 {
		t.Errorf("userinfo: %d %v", r.Status, r.Body)
	}
	if !active(introspect(ts, tok.AccessToken)) {
		t.Error("introspection: inactive")
	}
}

// The default server: ES256 access tokens and ID tokens, RS256 ID tokens
// for a client that registered RS256, both listed in discovery and
// verified by go-oidc, on the code exchange and on refresh.
func TestIDTokenAlgDefaultAndPerClient(t *testing.T) {
	ts := testserver.Start(t)
	if got := discoveredAlgs(t, ts); !slices.Equal(got, []string{"RS256", "ES256"}) {
		t.Fatalf("id_token_signing_alg_values_supported = %v, want [RS256 ES256]", got)
	}

	web := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "profile", "offline_access")
	tok := ts.Login(web, testserver.Alice, testserver.AlicePW)
	checkTokens(t, ts, testserver.WebClient, tok, "ES256", "ES256")

	rp := addClient(t, ts, "rs256-rp", "RS256")
	tok = ts.Login(rp, testserver.Alice, testserver.AlicePW)
	checkTokens(t, ts, "rs256-rp", tok, "ES256", "RS256")
	// Two keys: ES256 for the access token, RS256 for the ID token.
	_, esID := algOf(t, tok.AccessToken)
	_, rsID := algOf(t, tok.Extra("id_token").(string))
	if esID == rsID {
		t.Fatal("the access token and the ID token name the same key")
	}

	// Refresh: the same algorithms again (OIDC Core §12.2).
	ts.Clock.Advance(2 * time.Second)
	old := *tok
	old.Expiry = time.Now().Add(-time.Minute)
	nt, err := rp.TokenSource(context.Background(), &old).Token()
	if err != nil {
		t.Fatal(err)
	}
	ts.RememberToken(nt)
	checkTokens(t, ts, "rs256-rp", nt, "ES256", "RS256")

	// Back to the server's default.
	none := ""
	if _, err := operator.UpdateClient(context.Background(), ts.Store, "rs256-rp",
		operator.ClientUpdate{IDTokenAlg: &none, KeyAlgs: ts.Config.KeyAlgorithms()}, time.Now()); err != nil {
		t.Fatal(err)
	}
	r := ts.Refresh(nt.RefreshToken, "rs256-rp", "")
	if r.Status != 200 {
		t.Fatalf("refresh: %d %v", r.Status, r.Body)
	}
	if alg, _ := algOf(t, r.Str("id_token")); alg != "ES256" {
		t.Errorf("after going back to the default: ID token %s", alg)
	}
}

// EdDSA ID tokens (id_token_algs): at_hash is the left half of SHA-512,
// which go-oidc checks.
func TestIDTokenAlgEdDSA(t *testing.T) {
	ts := testserver.Start(t, testserver.WithConfig(func(c *config.Config) { c.IDTokenAlgs = "EdDSA" }))
	if got := discoveredAlgs(t, ts); !slices.Equal(got, []string{"RS256", "ES256", "EdDSA"}) {
		t.Fatalf("id_token_signing_alg_values_supported = %v", got)
	}
	rp := addClient(t, ts, "ed-rp", "EdDSA")
	tok := ts.Login(rp, testserver.Alice, testserver.AlicePW)
	checkTokens(t, ts, "ed-rp", tok, "ES256", "EdDSA")
	var c idClaims
	raw, _ := tok.Extra("id_token").(string)
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(tok.AccessToken))
	if c.AtHash == "" || len(c.AtHash) != 43 || c.AtHash == base64.RawURLEncoding.EncodeToString(sum[:16]) {
		t.Errorf("at_hash %q is not half a SHA-512", c.AtHash)
	}
}

// signing_alg RS256 (how to keep the previous default): everything RS256,
// and RS256 alone in discovery.
func TestIDTokenAlgRS256Server(t *testing.T) {
	ts := testserver.Start(t, testserver.WithConfig(func(c *config.Config) { c.SigningAlg = "RS256" }))
	if got := discoveredAlgs(t, ts); !slices.Equal(got, []string{"RS256"}) {
		t.Fatalf("id_token_signing_alg_values_supported = %v", got)
	}
	web := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "profile", "offline_access")
	checkTokens(t, ts, testserver.WebClient, ts.Login(web, testserver.Alice, testserver.AlicePW), "RS256", "RS256")
	// ES256 is not among its keys: a client cannot ask for it.
	_, err := operator.CreateClient(context.Background(), ts.Store, operator.ClientSpec{ID: "es", Public: true,
		RedirectURIs: []string{testserver.Redirect}, IDTokenAlg: "ES256", KeyAlgs: ts.Config.KeyAlgorithms()}, time.Now())
	if err == nil || !strings.Contains(err.Error(), "no ES256 signing keys") {
		t.Fatalf("create an ES256 client on an RS256 server: %v", err)
	}
}

// A client whose algorithm the server no longer has keys for (EdDSA
// dropped from id_token_algs): the server says so at start, and its token
// requests fail with server_error rather than carry an ID token signed
// otherwise than it registered.
func TestIDTokenAlgNoLongerConfigured(t *testing.T) {
	ts := testserver.Start(t, testserver.WithConfig(func(c *config.Config) { c.IDTokenAlgs = "EdDSA" }))
	rp := addClient(t, ts, "ed-rp", "EdDSA")
	after := testserver.StartOn(t, ts.Store, testserver.WithoutSeed(), testserver.WithMasterKey(ts.MasterKey))
	if !strings.Contains(after.Logs.String(), `"client_id":"ed-rp","id_token_signed_response_alg":"EdDSA"`) {
		t.Errorf("no start-up warning about ed-rp: %s", after.Logs.String())
	}
	verifier := oauth2.GenerateVerifier()
	rp.Endpoint = oauth2.Endpoint{AuthURL: after.URL + "/authorize", TokenURL: after.URL + "/token", AuthStyle: oauth2.AuthStyleInParams}
	cb := after.SignIn(after.Browser(), rp.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), testserver.Alice, testserver.AlicePW)
	code := cb.Query().Get("code")
	after.Remember(code)
	r := after.Post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {"ed-rp"},
		"redirect_uri": {testserver.Redirect}, "code_verifier": {verifier}}, "", "")
	testserver.WantError(t, r, 500, oauth.ServerError)
}

// A refresh whose signing fails (here: the client's ID token algorithm is
// no longer configured on this instance) answers server_error and leaves
// the family as it was, with no rotation recorded: the tokens are signed
// before the rotation is written. The same refresh token then works on an
// instance that can sign, and rotates the family once.
func TestRefreshSigningFailureDoesNotRotate(t *testing.T) {
	ts := testserver.Start(t, testserver.WithConfig(func(c *config.Config) { c.IDTokenAlgs = "EdDSA" }))
	rp := addClient(t, ts, "ed-rp", "EdDSA")
	tok := ts.Login(rp, testserver.Alice, testserver.AlicePW)
	ctx := context.Background()
	fams, err := ts.Store.ListFamilies(ctx, store.FamilyFilter{ClientID: "ed-rp"})
	if err != nil || len(fams) != 1 {
		t.Fatalf("families of ed-rp: %v %v", fams, err)
	}
	before := fams[0]

	after := testserver.StartOn(t, ts.Store, testserver.WithoutSeed(), testserver.WithMasterKey(ts.MasterKey))
	testserver.WantError(t, after.Refresh(tok.RefreshToken, "ed-rp", ""), 500, oauth.ServerError)
	f, err := ts.Store.GetFamily(ctx, before.ID)
	if err != nil {
		t.Fatal(err)
	}
	if f.Generation != before.Generation || !f.RotatedAt.Equal(before.RotatedAt) || !f.RevokedAt.IsZero() {
		t.Fatalf("after a failed signing: generation %d (was %d), rotated at %v (was %v), revoked at %v",
			f.Generation, before.Generation, f.RotatedAt, before.RotatedAt, f.RevokedAt)
	}
	events, err := ts.Store.ListAudit(ctx, store.AuditFilter{FamilyID: before.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if ev.Type == "refresh.rotated" {
			t.Fatalf("a rotation was recorded for a refresh that failed: %+v", ev)
		}
	}

	r := ts.Refresh(tok.RefreshToken, "ed-rp", "")
	if r.Status != 200 {
		t.Fatalf("refresh where EdDSA is configured: %d %v", r.Status, r.Body)
	}
	ts.Remember(r.Str("refresh_token"), r.Str("access_token"), r.Str("id_token"))
	if f, err = ts.Store.GetFamily(ctx, before.ID); err != nil || f.Generation != before.Generation+1 {
		t.Fatalf("after the successful refresh: generation %d, want %d (%v)", f.Generation, before.Generation+1, err)
	}
}
