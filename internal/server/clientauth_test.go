package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/grant"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/secret"
	"github.com/latchkey-dev/latchkey/internal/testserver"
)

const jwtClient = "jwt-app"

// jwtApp is a client registered with a JWKS (private_key_jwt).
type jwtApp struct {
	t    *testing.T
	ts   *testserver.Server
	priv ed25519.PrivateKey
	kid  string
}

func newJWTApp(t *testing.T, ts *testserver.Server) *jwtApp {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "k1", Use: "sig"}}})
	_, err = operator.CreateClient(context.Background(), ts.Store, operator.ClientSpec{
		ID: jwtClient, Name: "JWT App", RedirectURIs: []string{testserver.Redirect}, JWKS: string(set),
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &jwtApp{t: t, ts: ts, priv: priv, kid: "k1"}
}

// assertion signs a client assertion; edit changes its claims.
func (a *jwtApp) assertion(edit func(map[string]any)) string {
	a.t.Helper()
	now := a.ts.Clock.Now()
	c := map[string]any{"iss": jwtClient, "sub": jwtClient, "aud": a.ts.URL + "/token",
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": secret.Random(12)}
	if edit != nil {
		edit(c)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: a.priv}, (&jose.SignerOptions{}).WithHeader("kid", a.kid))
	if err != nil {
		a.t.Fatal(err)
	}
	raw, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		a.t.Fatal(err)
	}
	return raw
}

// post sends form to path authenticated with assertion.
func (a *jwtApp) post(path string, form url.Values, assertion string) testserver.Response {
	f := url.Values{"client_assertion_type": {grant.ClientAssertionType}, "client_assertion": {assertion}}
	for k, v := range form {
		f[k] = v
	}
	return a.ts.Post(path, f, "", "")
}

// TestPrivateKeyJWT: a client registered with a JWKS authenticates with
// signed assertions (RFC 7523) at the token, introspection and revocation
// endpoints, and with nothing else.
func TestPrivateKeyJWT(t *testing.T) {
	ts := testserver.Start(t)
	app := newJWTApp(t, ts)
	cfg := ts.OAuth2Config(jwtClient, "", "openid", "offline_access")
	code, v := authCode(t, ts, cfg)
	ex := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testserver.Redirect}, "code_verifier": {v}}
	r := app.post("/token", ex, app.assertion(nil))
	if r.Status != 200 || r.Str("refresh_token") == "" {
		t.Fatalf("code exchange with private_key_jwt: %d %v", r.Status, r.Body)
	}
	verifyIDRaw(t, ts, jwtClient, r.Str("id_token"))
	rt := r.Str("refresh_token")

	// Refresh; aud may be the issuer too.
	used := app.assertion(func(c map[string]any) { c["aud"] = ts.URL })
	r = app.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, used)
	if r.Status != 200 {
		t.Fatalf("refresh with private_key_jwt: %d %v", r.Status, r.Body)
	}
	rt = r.Str("refresh_token")

	for name, tc := range map[string]struct {
		assertion string
		extra     url.Values
		status    int
		code      string
	}{
		"replayed assertion": {used, nil, 401, oauth.InvalidClient},
		"wrong aud":          {app.assertion(func(c map[string]any) { c["aud"] = "https://elsewhere.example/token" }), nil, 401, oauth.InvalidClient},
		"expired":            {app.assertion(func(c map[string]any) { c["exp"] = ts.Clock.Now().Add(-time.Minute).Unix() }), nil, 401, oauth.InvalidClient},
		"exp too far ahead":  {app.assertion(func(c map[string]any) { c["exp"] = ts.Clock.Now().Add(time.Hour).Unix() }), nil, 401, oauth.InvalidClient},
		"no jti":             {app.assertion(func(c map[string]any) { delete(c, "jti") }), nil, 401, oauth.InvalidClient},
		"sub of another":     {app.assertion(func(c map[string]any) { c["sub"], c["iss"] = testserver.WebClient, testserver.WebClient }), nil, 401, oauth.InvalidClient},
		"client_id mismatch": {app.assertion(nil), url.Values{"client_id": {testserver.WebClient}}, 400, oauth.InvalidRequest},
		"with a secret too":  {app.assertion(nil), url.Values{"client_secret": {"x"}}, 400, oauth.InvalidRequest},
		"wrong type":         {app.assertion(nil), url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:saml2-bearer"}}, 401, oauth.InvalidClient},
	} {
		t.Run(name, func(t *testing.T) {
			f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
			for k, v := range tc.extra {
				f[k] = v
			}
			testserver.WantError(t, app.post("/token", f, tc.assertion), tc.status, tc.code)
		})
	}
	// The client has no secret to fall back on.
	testserver.WantError(t, ts.Post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {jwtClient}}, "", ""), 401, oauth.InvalidClient)
	testserver.WantError(t, ts.Post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, jwtClient, "guess-guess-guess"), 401, oauth.InvalidClient)

	// Introspection and revocation accept the assertion too.
	in := app.post("/introspect", url.Values{"token": {rt}}, app.assertion(nil))
	if !active(in) || in.Str("client_id") != jwtClient {
		t.Fatalf("introspect with private_key_jwt: %d %v", in.Status, in.Body)
	}
	if rev := app.post("/revoke", url.Values{"token": {rt}}, app.assertion(nil)); rev.Status != 200 {
		t.Fatalf("revoke with private_key_jwt: %d %v", rev.Status, rev.Body)
	}
	wantReason(t, app.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, app.assertion(nil)), oauth.ReasonRevoked)
}

// verifyIDRaw verifies a raw ID token for clientID.
func verifyIDRaw(t *testing.T, ts *testserver.Server, clientID, raw string) {
	t.Helper()
	if raw == "" {
		t.Fatal("no id_token")
	}
	if _, err := ts.Provider().Verifier(oidcConfig(ts, clientID)).Verify(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
}

// TestClientAuthThrottling: failed client authentications at /token,
// /revoke and /introspect are counted per client id and per address in
// the store; over the limit even the right secret waits (429, Retry-After)
// until the window ends.
// Failed client authentications are throttled per client id and per
// address. A presented secret short enough to match a guessable
// (argon2id-hashed) registered secret is refused over the limit, even when
// right; 256-bit secrets cannot be guessed, so their clients are never
// locked out by someone who merely knows the client id.
func TestClientAuthThrottling(t *testing.T) {
	ts := testserver.Start(t, testserver.WithConfig(func(c *config.Config) {
		c.ThrottleClientPerID, c.ThrottleClientPerAddress = 3, 0
	}))
	bad := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"lkrt_x"}}
	for i, path := range []string{"/token", "/revoke", "/introspect"} {
		f := bad
		if path != "/token" {
			f = url.Values{"token": {"x"}}
		}
		r := ts.Post(path, f, testserver.ShortClient, "wrong-"+strconv.Itoa(i))
		testserver.WantError(t, r, 401, oauth.InvalidClient)
	}
	r := ts.Post("/token", bad, testserver.ShortClient, testserver.ShortSecret)
	testserver.WantError(t, r, http.StatusTooManyRequests, oauth.InvalidClient)
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra <= 0 {
		t.Fatalf("Retry-After = %q", r.Header.Get("Retry-After"))
	}
	// Further short guesses are refused without being checked.
	testserver.WantError(t, ts.Post("/token", bad, testserver.ShortClient, "guess-4"), http.StatusTooManyRequests, oauth.InvalidClient)
	// A client with a 256-bit secret cannot be locked out by failures.
	for i := range 5 {
		long := "wrong-" + strconv.Itoa(i) + "-0123456789abcdefghijklmnopqrstuvwxyz"
		testserver.WantError(t, ts.Post("/token", bad, testserver.WebClient, long), 401, oauth.InvalidClient)
	}
	testserver.WantError(t, ts.Post("/token", bad, testserver.WebClient, testserver.WebSecret), 400, oauth.InvalidGrant)
	// Other clients are not affected.
	if r := ts.Post("/introspect", url.Values{"token": {"x"}}, testserver.OtherClient, testserver.OtherSecret); r.Status != 200 {
		t.Fatalf("another client: %d %v", r.Status, r.Body)
	}
	ts.Clock.Advance(ts.Config.ThrottleWindow.D() + time.Second)
	testserver.WantError(t, ts.Post("/token", bad, testserver.ShortClient, testserver.ShortSecret), 400, oauth.InvalidGrant)

	// Per address: many client ids from one address.
	ts2 := testserver.Start(t, testserver.WithConfig(func(c *config.Config) {
		c.ThrottleClientPerID, c.ThrottleClientPerAddress = 0, 4
	}))
	for i := range 4 {
		testserver.WantError(t, ts2.Post("/token", bad, "nobody-"+strconv.Itoa(i), "some-secret"), 401, oauth.InvalidClient)
	}
	testserver.WantError(t, ts2.Post("/token", bad, testserver.ShortClient, testserver.ShortSecret), http.StatusTooManyRequests, oauth.InvalidClient)
}

func oidcConfig(ts *testserver.Server, clientID string) *oidc.Config {
	return &oidc.Config{ClientID: clientID, Now: ts.Clock.Now}
}
