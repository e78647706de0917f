package authorize

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/store"
)

const (
	testRedirect  = "https://app.example.com/callback"
	otherRedirect = "http://localhost:3000/cb?x=1"
	goodChallenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" // RFC 7636 appendix B
)

var testClients = map[string]*store.Client{
	"web": {
		ID: "web", RedirectURIs: []string{testRedirect, otherRedirect},
		GrantTypes: []string{"authorization_code", "refresh_token"},
		Scopes:     []string{"openid", "profile", "email", "offline_access"},
	},
	"spa": {
		ID: "spa", Public: true, RedirectURIs: []string{testRedirect},
		GrantTypes: []string{"authorization_code", "refresh_token"},
		Scopes:     []string{"openid", "profile"},
	},
	"m2m": {
		ID: "m2m", RedirectURIs: []string{testRedirect},
		GrantTypes: []string{"refresh_token"},
		Scopes:     []string{"openid"},
	},
}

func lookupClient(id string) (*store.Client, error) {
	if c, ok := testClients[id]; ok {
		return c, nil
	}
	return nil, store.ErrNotFound
}

// base returns a valid request for the web client; edits are applied on top
// ("" deletes the parameter).
func base(edits ...string) url.Values {
	v := url.Values{
		"client_id":     {"web"},
		"redirect_uri":  {testRedirect},
		"response_type": {"code"},
		"scope":         {"openid profile"},
		"state":         {"xyz"},
	}
	for i := 0; i+1 < len(edits); i += 2 {
		if edits[i+1] == "\x00delete" {
			v.Del(edits[i])
		} else {
			v.Set(edits[i], edits[i+1])
		}
	}
	return v
}

const del = "\x00delete"

func TestParseValid(t *testing.T) {
	req, c, err := parse(base("nonce", "n-0S6", "prompt", "login consent", "max_age", "300", "acr_values", "urn:a urn:b",
		"code_challenge", goodChallenge, "code_challenge_method", "S256", "scope", "openid openid email", "response_mode", "query"), lookupClient)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "web" {
		t.Errorf("client %q", c.ID)
	}
	want := store.AuthRequest{
		ClientID: "web", RedirectURI: testRedirect, State: "xyz", Nonce: "n-0S6",
		CodeChallenge: goodChallenge, CodeChallengeMethod: "S256", Scopes: []string{"openid", "email"},
		Prompt: []string{"login", "consent"}, MaxAge: 300, ACRValues: []string{"urn:a", "urn:b"},
	}
	if req.ClientID != want.ClientID || req.RedirectURI != want.RedirectURI || req.State != want.State ||
		req.Nonce != want.Nonce || req.CodeChallenge != want.CodeChallenge || req.CodeChallengeMethod != want.CodeChallengeMethod ||
		!slices.Equal(req.Scopes, want.Scopes) || !slices.Equal(req.Prompt, want.Prompt) || req.MaxAge != want.MaxAge ||
		!slices.Equal(req.ACRValues, want.ACRValues) {
		t.Errorf("parse =\n%+v\nwant\n%+v", *req, want)
	}

	// Minimal request: no PKCE for a confidential client, no max_age.
	req, _, err = parse(base(), lookupClient)
	if err != nil {
		t.Fatal(err)
	}
	if req.MaxAge != -1 || req.CodeChallenge != "" || req.CodeChallengeMethod != "" || len(req.Prompt) != 0 || len(req.ACRValues) != 0 {
		t.Errorf("minimal request: %+v", *req)
	}
	// The second registered URI, with its own query, matches exactly.
	if req, _, err = parse(base("redirect_uri", otherRedirect), lookupClient); err != nil || req.RedirectURI != otherRedirect {
		t.Errorf("second redirect URI: %v", err)
	}
	// A public client with S256 PKCE.
	if _, _, err = parse(base("client_id", "spa", "scope", "openid", "code_challenge", goodChallenge, "code_challenge_method", "S256"), lookupClient); err != nil {
		t.Errorf("public client with PKCE: %v", err)
	}
	// max_age=0 is allowed; state may be absent.
	if req, _, err = parse(base("max_age", "0", "state", del), lookupClient); err != nil || req.MaxAge != 0 || req.State != "" {
		t.Errorf("max_age=0 without state: %v %+v", err, req)
	}
}

func TestParseNoRedirectErrors(t *testing.T) {
	tests := []struct {
		name   string
		params url.Values
		desc   string
	}{
		{"client_id missing", base("client_id", del), "The client_id parameter is missing."},
		{"client_id empty", base("client_id", ""), "The client_id parameter is missing."},
		{"client unknown", base("client_id", "nope"), "The application (client_id) is not registered with this server."},
		{"redirect_uri missing", base("redirect_uri", del), "The redirect_uri parameter is missing."},
		{"redirect_uri unregistered", base("redirect_uri", "https://evil.example/callback"), "The redirect_uri is not registered for this application."},
		{"redirect_uri trailing slash", base("redirect_uri", testRedirect+"/"), "The redirect_uri is not registered for this application."},
		{"redirect_uri extra query", base("redirect_uri", testRedirect+"?a=b"), "The redirect_uri is not registered for this application."},
		{"redirect_uri prefix", base("redirect_uri", "https://app.example.com/"), "The redirect_uri is not registered for this application."},
		{"redirect_uri case", base("redirect_uri", "https://APP.example.com/callback"), "The redirect_uri is not registered for this application."},
		{"redirect_uri of another client's", base("client_id", "spa", "redirect_uri", otherRedirect), "The redirect_uri is not registered for this application."},
		{"repeated client_id", func() url.Values { v := base(); v.Add("client_id", "spa"); return v }(), `The "client_id" parameter must not be repeated.`},
		{"repeated redirect_uri", func() url.Values { v := base(); v.Add("redirect_uri", testRedirect); return v }(), `The "redirect_uri" parameter must not be repeated.`},
		{"repeated state", func() url.Values { v := base(); v.Add("state", "b"); return v }(), `The "state" parameter must not be repeated.`},
		{"parameter too long", base("login_hint", strings.Repeat("h", maxParamLen+1)), `The "login_hint" parameter is too long.`},
		// Even a too-long state in an otherwise valid request over maxParamLen is not redirected.
		{"state over param limit", base("state", strings.Repeat("s", maxParamLen+1)), `The "state" parameter is too long.`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, c, err := parse(tt.params, lookupClient)
			if err == nil {
				t.Fatalf("accepted: %+v", req)
			}
			if req != nil || c != nil {
				t.Error("returned a request with an error")
			}
			var re *redirectError
			if errors.As(err, &re) {
				t.Fatalf("error would be redirected to %q: %v", re.redirectURI, err)
			}
			var e *oauth.Error
			if !errors.As(err, &e) {
				t.Fatalf("not an *oauth.Error: %T %v", err, err)
			}
			if !e.NoRedirect || e.Code != oauth.InvalidRequest || e.Description != tt.desc {
				t.Fatalf("got %+v, want NoRedirect invalid_request %q", e, tt.desc)
			}
			if e.HTTPStatus() != http.StatusBadRequest {
				t.Errorf("status %d", e.HTTPStatus())
			}
		})
	}
}

func TestParseRedirectErrors(t *testing.T) {
	tests := []struct {
		name   string
		params url.Values
		code   string
		desc   string // substring
		state  string // the state sent back
	}{
		{"state too long", base("state", strings.Repeat("s", maxState+1)), oauth.InvalidRequest, "The state parameter is longer than 2048 characters.", ""},
		{"request object", base("request", "eyJhbGciOiJub25lIn0.e30."), "request_not_supported", "Request objects are not supported.", "xyz"},
		{"request_uri", base("request_uri", "urn:ietf:params:oauth:request_uri:abc"), "request_uri_not_supported", "The request_uri parameter is not supported.", "xyz"},
		{"response_type missing", base("response_type", del), oauth.InvalidRequest, "The response_type parameter is missing; use response_type=code.", "xyz"},
		{"response_type empty", base("response_type", ""), oauth.InvalidRequest, "The response_type parameter is missing", "xyz"},
		{"response_type token", base("response_type", "token"), oauth.UnsupportedResponseType, "Only response_type=code is supported.", "xyz"},
		{"response_type hybrid", base("response_type", "code id_token"), oauth.UnsupportedResponseType, "Only response_type=code is supported.", "xyz"},
		{"response_type case", base("response_type", "CODE"), oauth.UnsupportedResponseType, "Only response_type=code is supported.", "xyz"},
		{"response_mode fragment", base("response_mode", "fragment"), oauth.InvalidRequest, "Only response_mode=query is supported.", "xyz"},
		{"response_mode form_post", base("response_mode", "form_post"), oauth.InvalidRequest, "Only response_mode=query is supported.", "xyz"},
		{"client without code grant", base("client_id", "m2m", "scope", "openid"), oauth.UnauthorizedClient, "may not use the authorization code flow", "xyz"},
		{"scope missing", base("scope", del), oauth.InvalidScope, `The scope parameter is missing; request at least "openid".`, "xyz"},
		{"scope blank", base("scope", "   "), oauth.InvalidScope, "The scope parameter is missing", "xyz"},
		{"scope too long", base("scope", strings.Repeat("a", maxScopeLen+1)), oauth.InvalidScope, "The scope parameter is too long.", "xyz"},
		{"scope invalid char", base("scope", `openid "quoted"`), oauth.InvalidScope, "The scope parameter contains an invalid character.", "xyz"},
		{"scope backslash", base("scope", `openid a\b`), oauth.InvalidScope, "invalid character", "xyz"},
		{"scope non-ascii", base("scope", "openid émail"), oauth.InvalidScope, "invalid character", "xyz"},
		{"scope not allowed", base("scope", "openid admin"), oauth.InvalidScope, `The scope "admin" is not allowed for this application.`, "xyz"},
		{"scope not allowed for spa", base("client_id", "spa", "scope", "openid email", "code_challenge", goodChallenge, "code_challenge_method", "S256"), oauth.InvalidScope, `The scope "email" is not allowed`, "xyz"},
		{"pkce required for public", base("client_id", "spa", "scope", "openid"), oauth.InvalidRequest, "PKCE is required for public clients", "xyz"},
		{"pkce method without challenge", base("code_challenge_method", "S256"), oauth.InvalidRequest, "code_challenge_method was given without code_challenge.", "xyz"},
		{"pkce method without challenge, public", base("client_id", "spa", "scope", "openid", "code_challenge_method", "S256"), oauth.InvalidRequest, "code_challenge_method was given without code_challenge.", "xyz"},
		{"pkce plain refused", base("code_challenge", goodChallenge, "code_challenge_method", "plain"), oauth.InvalidRequest, "Only code_challenge_method=S256 is supported.", "xyz"},
		{"pkce missing method means plain", base("code_challenge", goodChallenge), oauth.InvalidRequest, "Only code_challenge_method=S256 is supported.", "xyz"},
		{"pkce lower-case method", base("code_challenge", goodChallenge, "code_challenge_method", "s256"), oauth.InvalidRequest, "Only code_challenge_method=S256 is supported.", "xyz"},
		{"pkce challenge 42 chars", base("code_challenge", goodChallenge[:42], "code_challenge_method", "S256"), oauth.InvalidRequest, "code_challenge must be 43 base64url characters", "xyz"},
		{"pkce challenge 44 chars", base("code_challenge", goodChallenge+"A", "code_challenge_method", "S256"), oauth.InvalidRequest, "code_challenge must be 43 base64url characters", "xyz"},
		{"pkce challenge std base64", base("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM", "code_challenge_method", "S256"), oauth.InvalidRequest, "code_challenge must be 43 base64url characters", "xyz"},
		{"pkce challenge padded", base("code_challenge", goodChallenge[:42]+"=", "code_challenge_method", "S256"), oauth.InvalidRequest, "code_challenge must be 43 base64url characters", "xyz"},
		{"nonce too long", base("nonce", strings.Repeat("n", maxNonce+1)), oauth.InvalidRequest, "The nonce parameter is longer than 512 characters.", "xyz"},
		{"prompt unknown", base("prompt", "login sometimes"), oauth.InvalidRequest, `Unsupported prompt value "sometimes".`, "xyz"},
		{"prompt none combined", base("prompt", "none login"), oauth.InvalidRequest, "prompt=none cannot be combined with other values.", "xyz"},
		{"prompt none combined with consent", base("prompt", "consent none"), oauth.InvalidRequest, "prompt=none cannot be combined", "xyz"},
		{"max_age negative", base("max_age", "-1"), oauth.InvalidRequest, "max_age must be a non-negative number of seconds.", "xyz"},
		{"max_age non-numeric", base("max_age", "ten"), oauth.InvalidRequest, "max_age must be a non-negative number of seconds.", "xyz"},
		{"max_age fractional", base("max_age", "1.5"), oauth.InvalidRequest, "max_age must be a non-negative", "xyz"},
		{"max_age overflow", base("max_age", "99999999999999999999"), oauth.InvalidRequest, "max_age must be a non-negative", "xyz"},
		{"acr_values too long", base("acr_values", strings.Repeat("a", maxACRValues+1)), oauth.InvalidRequest, "acr_values is too long.", "xyz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _, err := parse(tt.params, lookupClient)
			if err == nil {
				t.Fatalf("accepted: %+v", req)
			}
			var re *redirectError
			if !errors.As(err, &re) {
				t.Fatalf("not a redirect error: %T %v", err, err)
			}
			if re.redirectURI != tt.params.Get("redirect_uri") {
				t.Errorf("redirect to %q, want %q", re.redirectURI, tt.params.Get("redirect_uri"))
			}
			if re.state != tt.state {
				t.Errorf("state %q, want %q", trunc(re.state), tt.state)
			}
			if re.err.Code != tt.code || !strings.Contains(re.err.Description, tt.desc) {
				t.Errorf("got %s %q, want %s containing %q", re.err.Code, re.err.Description, tt.code, tt.desc)
			}
			if re.err.NoRedirect {
				t.Error("redirectable error marked NoRedirect")
			}
		})
	}
}

func TestParseBoundaries(t *testing.T) {
	ok := []url.Values{
		base("state", strings.Repeat("s", maxState)),
		base("nonce", strings.Repeat("n", maxNonce)),
		base("acr_values", strings.Repeat("a", maxACRValues)),
		base("login_hint", strings.Repeat("h", maxParamLen)),
		base("prompt", "none"),
		base("prompt", "select_account"),
	}
	for _, p := range ok {
		if _, _, err := parse(p, lookupClient); err != nil {
			t.Errorf("parse(%.80v): %v", p, err)
		}
	}
}

func TestParseClientLookupError(t *testing.T) {
	boom := errors.New("database is down")
	_, _, err := parse(base(), func(string) (*store.Client, error) { return nil, boom })
	var e *oauth.Error
	if !errors.As(err, &e) || !e.NoRedirect || e.Code != oauth.InvalidRequest || !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
}

func TestRedirectTo(t *testing.T) {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/authorize", nil)
	redirectTo(rec, r, "https://app.example.com/cb?keep=1&state=old", url.Values{
		"code": {"c1"}, "state": {"s t&x"}, "iss": {"https://id.example.com"}, "empty": {""},
	})
	if rec.Code != http.StatusFound {
		t.Fatalf("status %d", rec.Code)
	}
	u, err := url.Parse(rec.Header().Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Host != "app.example.com" || u.Path != "/cb" || q.Get("keep") != "1" || q.Get("code") != "c1" ||
		q.Get("state") != "s t&x" || q.Get("iss") != "https://id.example.com" || q.Has("empty") || len(q["state"]) != 1 {
		t.Errorf("Location = %s", u)
	}
}

func FuzzParseAuthorize(f *testing.F) {
	seeds := []string{
		base().Encode(),
		base("code_challenge", goodChallenge, "code_challenge_method", "S256").Encode(),
		base("client_id", "spa", "scope", "openid", "code_challenge", goodChallenge, "code_challenge_method", "S256").Encode(),
		base("redirect_uri", otherRedirect, "prompt", "none", "max_age", "0").Encode(),
		base("code_challenge", goodChallenge).Encode(),
		"client_id=web&client_id=web",
		"client_id=web&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcallback%2F",
		"",
		"%zz",
		"a;b",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		params, err := url.ParseQuery(raw)
		if err != nil {
			return // the handler refuses these before parse
		}
		req, c, err := parse(params, lookupClient)
		if err != nil {
			var re *redirectError
			if errors.As(err, &re) {
				// Only ever redirect to a URI registered for the named client.
				rc := testClients[params.Get("client_id")]
				if rc == nil || !slices.Contains(rc.RedirectURIs, re.redirectURI) {
					t.Fatalf("redirect error to unregistered URI %q", re.redirectURI)
				}
				if len(re.state) > maxState {
					t.Fatalf("redirect carries a %d-byte state", len(re.state))
				}
			}
			return
		}
		if c == nil || req == nil || c.ID != req.ClientID {
			t.Fatalf("success without a consistent client: %+v %+v", req, c)
		}
		if !slices.Contains(testClients[req.ClientID].RedirectURIs, req.RedirectURI) {
			t.Fatalf("accepted unregistered redirect URI %q", req.RedirectURI)
		}
		switch {
		case req.CodeChallenge == "" && req.CodeChallengeMethod == "":
			if c.Public {
				t.Fatal("public client without PKCE accepted")
			}
		case req.CodeChallengeMethod == "S256" && validChallenge(req.CodeChallenge):
		default:
			t.Fatalf("accepted challenge %q with method %q", req.CodeChallenge, req.CodeChallengeMethod)
		}
		if len(req.Scopes) == 0 || !oauth.Subset(req.Scopes, c.Scopes) {
			t.Fatalf("accepted scopes %q", req.Scopes)
		}
		if req.MaxAge < -1 || len(req.State) > maxState || len(req.Nonce) > maxNonce {
			t.Fatalf("accepted out-of-range values: %+v", req)
		}
		if slices.Contains(req.Prompt, "none") && len(req.Prompt) != 1 {
			t.Fatalf("accepted prompt %q", req.Prompt)
		}
	})
}

// RFC 8252 §7.3: loopback IP redirects match on any port; nothing else does.
func TestRedirectRegisteredLoopbackPorts(t *testing.T) {
	reg := []string{"http://127.0.0.1/cb", "http://[::1]/native", "http://localhost:3000/cb", "https://app.example.com/cb"}
	for _, tc := range []struct {
		got  string
		want bool
	}{
		{"http://127.0.0.1/cb", true},
		{"http://127.0.0.1:51004/cb", true},
		{"http://[::1]:8123/native", true},
		{"http://127.0.0.1:51004/other", false},
		{"http://127.0.0.1:51004/cb?x=1", false},
		{"http://user@127.0.0.1:51004/cb", false},
		{"http://localhost:3001/cb", false}, // host names match exactly, port included
		{"http://localhost:3000/cb", true},
		{"https://127.0.0.1:51004/cb", false},
		{"https://app.example.com:444/cb", false},
		{"http://[::1]:8123/cb", false},
	} {
		if got := redirectRegistered(reg, tc.got); got != tc.want {
			t.Errorf("redirectRegistered(%q) = %v, want %v", tc.got, got, tc.want)
		}
	}
}
