package server

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/latchkey-dev/latchkey/internal/dpop"
	"github.com/latchkey-dev/latchkey/internal/grant"
	"github.com/latchkey-dev/latchkey/internal/httpx"
	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// bearerError answers a protected-resource request per RFC 6750 §3.
func bearerError(w http.ResponseWriter, code, desc string) {
	authError(w, `Bearer realm="latchkey"`, code, desc)
}

// dpopError answers a request made (or that should have been made) with
// the DPoP scheme, per RFC 9449 §7.1: a DPoP challenge with the algorithms
// accepted.
func dpopError(w http.ResponseWriter, code, desc string) {
	authError(w, `DPoP algs="`+strings.Join(keys.ClientAlgNames(), " ")+`"`, code, desc)
}

func authError(w http.ResponseWriter, challenge, code, desc string) {
	status := http.StatusUnauthorized
	switch code {
	case oauth.InvalidRequest:
		status = http.StatusBadRequest
	case oauth.InsufficientScope:
		status = http.StatusForbidden
	}
	h := challenge
	if code != "" {
		// RFC 6750 §3: the values are quoted-strings; keep them valid.
		q := strings.NewReplacer(`"`, "'", `\`, "/")
		h += `, error="` + code + `", error_description="` + q.Replace(desc) + `"`
	}
	w.Header().Set("WWW-Authenticate", h)
	if code == "" {
		w.WriteHeader(status)
		return
	}
	httpx.WriteJSON(w, status, httpx.OAuthResponse{Error: code, Description: desc})
}

// maxAuthorization bounds the Authorization header (a scheme and a token).
const maxAuthorization = token.MaxLen + 64

// bearerToken extracts the access token from the Authorization header
// (Bearer, or DPoP per RFC 9449 §7.1: isDPoP) or a form body (RFC 6750
// §2.1, §2.2); using both is an error.
func bearerToken(w http.ResponseWriter, r *http.Request) (tok string, isDPoP, ok bool) {
	if a := r.Header.Get("Authorization"); a != "" {
		if len(a) > maxAuthorization || len(r.Header.Values("Authorization")) > 1 {
			bearerError(w, oauth.InvalidRequest, "The Authorization header is too long or repeated.")
			return "", false, false
		}
		scheme, rest, ok := strings.Cut(a, " ")
		switch {
		case ok && strings.EqualFold(scheme, "Bearer"):
		case ok && strings.EqualFold(scheme, "DPoP"):
			isDPoP = true
		default:
			bearerError(w, oauth.InvalidRequest, "Use the Bearer or DPoP authorization scheme.")
			return "", false, false
		}
		tok = strings.TrimSpace(rest)
	}
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		form, err := httpx.ParseForm(w, r)
		if err != nil {
			e := oauth.As(err)
			bearerError(w, oauth.InvalidRequest, e.Description)
			return "", false, false
		}
		if form.Has("access_token") {
			if tok != "" {
				bearerError(w, oauth.InvalidRequest, "Send the access token in one place only.")
				return "", false, false
			}
			tok = form.Get("access_token")
		}
	}
	if tok == "" {
		bearerError(w, "", "")
		return "", false, false
	}
	return tok, isDPoP, true
}

// checkDPoP enforces RFC 9449 §7 for a verified access token: a DPoP-bound
// token only with the DPoP scheme and a proof from its key, bound to the
// token (ath); an unbound token never with the DPoP scheme. It answers and
// returns false when the request is refused.
func (s *Server) checkDPoP(w http.ResponseWriter, r *http.Request, raw string, isDPoP bool, c *token.AccessClaims) bool {
	bound := ""
	if c.Confirmation != nil {
		bound = c.Confirmation.JKT
	}
	switch {
	case bound == "" && !isDPoP:
		return true
	case bound == "":
		dpopError(w, oauth.InvalidToken, "This access token is not DPoP-bound; send it with the Bearer scheme.")
		return false
	case !isDPoP:
		// A stolen bound token must not work as a bearer token (downgrade).
		dpopError(w, oauth.InvalidToken, "This access token is DPoP-bound: send it with the DPoP scheme and a DPoP proof.")
		return false
	}
	if n := s.dpop.Nonce(); n != "" {
		w.Header().Set("DPoP-Nonce", n)
	}
	p, err := s.dpop.Verify(r.Context(), r, dpop.Request{Method: r.Method, URL: s.issuer + "/userinfo", AccessToken: raw})
	switch e := oauth.As(err); {
	case errors.Is(err, dpop.ErrNoProof):
		dpopError(w, oauth.InvalidDPoPProof, "Send a DPoP proof in the DPoP header.")
		return false
	case err != nil && (e.Code == oauth.InvalidDPoPProof || e.Code == oauth.UseDPoPNonce):
		dpopError(w, e.Code, e.Description)
		return false
	case err != nil:
		httpx.WriteOAuthError(w, r, e)
		return false
	case p.JKT != bound:
		dpopError(w, oauth.InvalidToken, "The DPoP proof's key is not the one this access token is bound to.")
		return false
	}
	return true
}

// Userinfo is the UserInfo response (OIDC Core §5.3).
type Userinfo struct {
	Subject           string `json:"sub"`
	Name              string `json:"name,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Email             string `json:"email,omitempty"`
}

func (s *Server) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	raw, isDPoP, ok := bearerToken(w, r)
	if !ok {
		return
	}
	claims, _, u, err := grant.ActiveAccessToken(ctx, s.store, s.keys, s.issuer, s.now(), raw)
	if errors.Is(err, grant.ErrInactive) {
		if isDPoP {
			dpopError(w, oauth.InvalidToken, "The access token is invalid, expired or revoked.")
			return
		}
		bearerError(w, oauth.InvalidToken, "The access token is invalid, expired or revoked.")
		return
	}
	if err != nil {
		httpx.WriteOAuthError(w, r, oauth.Wrap(err, "check access token"))
		return
	}
	if !s.checkDPoP(w, r, raw, isDPoP, claims) {
		return
	}
	scopes := oauth.ParseScope(claims.Scope)
	if !slices.Contains(scopes, oauth.ScopeOpenID) {
		bearerError(w, oauth.InsufficientScope, "The access token lacks the openid scope.")
		return
	}
	if u == nil || u.Disabled {
		bearerError(w, oauth.InvalidToken, "The access token is invalid, expired or revoked.")
		return
	}
	resp := Userinfo{Subject: u.ID}
	if slices.Contains(scopes, oauth.ScopeProfile) {
		resp.Name, resp.PreferredUsername = u.Name, u.Username
	}
	if slices.Contains(scopes, oauth.ScopeEmail) {
		resp.Email = u.Email
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
}
