// Package authorize implements the authorization endpoint (RFC 6749 §4.1.1,
// OIDC Core §3.1.2) and the browser flow behind it: sign-in, consent, and
// issuing the authorization code.
package authorize

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/latchkey-dev/latchkey/internal/dpop"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/store"
)

// Limits on request parameters (every input is size-limited).
const (
	maxState     = 2048
	maxNonce     = 512
	maxScopeLen  = 1024
	maxParamLen  = 4096
	maxACRValues = 512
)

// request is a parsed, validated authorization request.
type request struct {
	store.AuthRequest
}

// redirectError is an error to send back to the client's redirect URI
// (RFC 6749 §4.1.2.1).
type redirectError struct {
	redirectURI, state string
	err                *oauth.Error
}

func (e *redirectError) Error() string { return e.err.Error() }

// parse validates the request in the order RFC 6749 §4.1.2.1 requires: the
// client and redirect URI first (errors shown to the user, never
// redirected), then everything else (errors redirected to the client).
func parse(params url.Values, client func(id string) (*store.Client, error)) (*store.AuthRequest, *store.Client, error) {
	if err := singleValued(params); err != nil {
		return nil, nil, err
	}
	for k, v := range params {
		if len(v[0]) > maxParamLen {
			return nil, nil, noRedirect(oauth.New(oauth.InvalidRequest, "The %q parameter is too long.", trunc(k)))
		}
	}
	clientID := params.Get("client_id")
	if clientID == "" {
		return nil, nil, noRedirect(oauth.New(oauth.InvalidRequest, "The client_id parameter is missing."))
	}
	c, err := client(clientID)
	if err != nil {
		return nil, nil, noRedirect(oauth.New(oauth.InvalidRequest, "The application (client_id) is not registered with this server.").WithCause(err))
	}
	redirectURI := params.Get("redirect_uri")
	if redirectURI == "" {
		// OIDC Core §3.1.2.1 makes redirect_uri REQUIRED.
		return nil, nil, noRedirect(oauth.New(oauth.InvalidRequest, "The redirect_uri parameter is missing."))
	}
	// Exact string match (RFC 9700 §4.1.3; no pattern or prefix matching).
	if !redirectRegistered(c.RedirectURIs, redirectURI) {
		return nil, nil, noRedirect(oauth.New(oauth.InvalidRequest, "The redirect_uri is not registered for this application."))
	}
	state := params.Get("state")
	fail := func(e *oauth.Error) (*store.AuthRequest, *store.Client, error) {
		if len(state) > maxState {
			state = ""
		}
		return nil, nil, &redirectError{redirectURI: redirectURI, state: state, err: e}
	}
	if len(state) > maxState {
		return fail(oauth.New(oauth.InvalidRequest, "The state parameter is longer than %d characters.", maxState))
	}
	if params.Has("request") {
		return fail(oauth.New("request_not_supported", "Request objects are not supported."))
	}
	if params.Has("request_uri") {
		return fail(oauth.New("request_uri_not_supported", "The request_uri parameter is not supported."))
	}
	switch rt := params.Get("response_type"); rt {
	case "code":
	case "":
		return fail(oauth.New(oauth.InvalidRequest, "The response_type parameter is missing; use response_type=code."))
	default:
		return fail(oauth.New(oauth.UnsupportedResponseType, "Only response_type=code is supported."))
	}
	if rm := params.Get("response_mode"); rm != "" && rm != "query" {
		return fail(oauth.New(oauth.InvalidRequest, "Only response_mode=query is supported."))
	}
	if !slices.Contains(c.GrantTypes, "authorization_code") {
		return fail(oauth.New(oauth.UnauthorizedClient, "This application may not use the authorization code flow."))
	}
	rawScope := params.Get("scope")
	if len(rawScope) > maxScopeLen {
		return fail(oauth.New(oauth.InvalidScope, "The scope parameter is too long."))
	}
	scopes := oauth.ParseScope(rawScope)
	if len(scopes) == 0 {
		return fail(oauth.New(oauth.InvalidScope, "The scope parameter is missing; request at least \"openid\"."))
	}
	for _, s := range scopes {
		if !oauth.ValidScopeToken(s) {
			return fail(oauth.New(oauth.InvalidScope, "The scope parameter contains an invalid character."))
		}
		if !slices.Contains(c.Scopes, s) {
			return fail(oauth.New(oauth.InvalidScope, "The scope %q is not allowed for this application.", trunc(s)))
		}
	}
	// PKCE (RFC 7636, RFC 9700 §2.1.1): S256 only; required for public clients.
	challenge, method := params.Get("code_challenge"), params.Get("code_challenge_method")
	switch {
	case challenge == "" && method != "":
		return fail(oauth.New(oauth.InvalidRequest, "code_challenge_method was given without code_challenge."))
	case challenge == "" && c.Public:
		return fail(oauth.New(oauth.InvalidRequest, "PKCE is required for public clients: send code_challenge and code_challenge_method=S256."))
	case challenge != "" && method != "S256":
		// A missing method means "plain" (RFC 7636 §4.3), which we refuse.
		return fail(oauth.New(oauth.InvalidRequest, "Only code_challenge_method=S256 is supported."))
	case challenge != "" && !validChallenge(challenge):
		return fail(oauth.New(oauth.InvalidRequest, "code_challenge must be 43 base64url characters (the S256 hash of the code verifier)."))
	}
	nonce := params.Get("nonce")
	if len(nonce) > maxNonce {
		return fail(oauth.New(oauth.InvalidRequest, "The nonce parameter is longer than %d characters.", maxNonce))
	}
	prompt := strings.Fields(params.Get("prompt"))
	for _, p := range prompt {
		if !slices.Contains([]string{"none", "login", "consent", "select_account"}, p) {
			return fail(oauth.New(oauth.InvalidRequest, "Unsupported prompt value %q.", trunc(p)))
		}
	}
	if slices.Contains(prompt, "none") && len(prompt) > 1 {
		return fail(oauth.New(oauth.InvalidRequest, "prompt=none cannot be combined with other values."))
	}
	maxAge := -1
	if v := params.Get("max_age"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fail(oauth.New(oauth.InvalidRequest, "max_age must be a non-negative number of seconds."))
		}
		maxAge = n
	}
	acr := params.Get("acr_values")
	if len(acr) > maxACRValues {
		return fail(oauth.New(oauth.InvalidRequest, "acr_values is too long."))
	}
	// RFC 9449 §10: dpop_jkt binds the code to the client's DPoP key.
	jkt := params.Get("dpop_jkt")
	if jkt != "" && !dpop.ValidJKT(jkt) {
		return fail(oauth.New(oauth.InvalidRequest, "dpop_jkt must be the base64url SHA-256 JWK thumbprint (RFC 7638) of the DPoP key."))
	}
	return &store.AuthRequest{
		ClientID: c.ID, RedirectURI: redirectURI, State: state, Nonce: nonce,
		CodeChallenge: challenge, CodeChallengeMethod: method, Scopes: scopes,
		Prompt: prompt, MaxAge: maxAge, ACRValues: strings.Fields(acr), DPoPJKT: jkt,
	}, c, nil
}

func noRedirect(e *oauth.Error) *oauth.Error { e.NoRedirect = true; return e }

func singleValued(v url.Values) error {
	for k, vs := range v {
		if len(vs) > 1 {
			// A repeated client_id or redirect_uri cannot be trusted for a
			// redirect, so this is shown to the user (RFC 6749 §3.1).
			return noRedirect(oauth.New(oauth.InvalidRequest, "The %q parameter must not be repeated.", trunc(k)))
		}
	}
	return nil
}

func validChallenge(s string) bool {
	if len(s) != 43 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// redirectTo builds the client redirect with params, adding iss (RFC 9207).
func redirectTo(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values) {
	u, _ := url.Parse(redirectURI) // validated at registration
	q := u.Query()
	for k, v := range params {
		if v[0] != "" {
			q.Set(k, v[0])
		}
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// redirectRegistered is exact string matching (RFC 9700 §4.1.3), with the
// one exception RFC 8252 §7.3 requires for native apps: for a registered
// loopback IP literal redirect (http://127.0.0.1/... or http://[::1]/...)
// any port is accepted, since the app picks a free port at run time.
func redirectRegistered(registered []string, got string) bool {
	if slices.Contains(registered, got) {
		return true
	}
	g, err := url.Parse(got)
	if err != nil || g.Scheme != "http" || (g.Hostname() != "127.0.0.1" && g.Hostname() != "::1") || g.User != nil {
		return false
	}
	for _, r := range registered {
		u, err := url.Parse(r)
		if err != nil || u.Scheme != "http" || u.Hostname() != g.Hostname() {
			continue
		}
		if u.Path == g.Path && u.RawQuery == g.RawQuery && u.Fragment == "" && g.Fragment == "" {
			return true
		}
	}
	return false
}
