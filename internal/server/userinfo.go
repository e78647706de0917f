package server

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/latchkey-dev/latchkey/internal/grant"
	"github.com/latchkey-dev/latchkey/internal/httpx"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/store"
)

// bearerError answers a protected-resource request per RFC 6750 §3.
func bearerError(w http.ResponseWriter, code, desc string) {
	status := http.StatusUnauthorized
	switch code {
	case oauth.InvalidRequest:
		status = http.StatusBadRequest
	case oauth.InsufficientScope:
		status = http.StatusForbidden
	}
	h := `Bearer realm="latchkey"`
	if code != "" {
		h += `, error="` + code + `", error_description="` + desc + `"`
	}
	w.Header().Set("WWW-Authenticate", h)
	if code == "" {
		w.WriteHeader(status)
		return
	}
	httpx.WriteJSON(w, status, httpx.OAuthResponse{Error: code, Description: desc})
}

// bearerToken extracts the access token from the Authorization header or a
// form body (RFC 6750 §2.1, §2.2); using both is an error.
func bearerToken(w http.ResponseWriter, r *http.Request) (string, bool) {
	var tok string
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, rest, ok := strings.Cut(a, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			bearerError(w, oauth.InvalidRequest, "Use the Bearer authorization scheme.")
			return "", false
		}
		tok = strings.TrimSpace(rest)
	}
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		form, err := httpx.ParseForm(w, r)
		if err != nil {
			e := oauth.As(err)
			bearerError(w, oauth.InvalidRequest, e.Description)
			return "", false
		}
		if form.Has("access_token") {
			if tok != "" {
				bearerError(w, oauth.InvalidRequest, "Send the access token in one place only.")
				return "", false
			}
			tok = form.Get("access_token")
		}
	}
	if tok == "" {
		bearerError(w, "", "")
		return "", false
	}
	return tok, true
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
	raw, ok := bearerToken(w, r)
	if !ok {
		return
	}
	claims, _, err := grant.ActiveAccessToken(ctx, s.store, s.keys, s.issuer, s.now(), raw)
	if errors.Is(err, grant.ErrInactive) {
		bearerError(w, oauth.InvalidToken, "The access token is invalid, expired or revoked.")
		return
	}
	if err != nil {
		httpx.WriteOAuthError(w, r, oauth.Wrap(err, "check access token"))
		return
	}
	scopes := oauth.ParseScope(claims.Scope)
	if !slices.Contains(scopes, oauth.ScopeOpenID) {
		bearerError(w, oauth.InsufficientScope, "The access token lacks the openid scope.")
		return
	}
	u, err := s.store.GetUser(ctx, claims.Subject)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled) {
		bearerError(w, oauth.InvalidToken, "The access token is invalid, expired or revoked.")
		return
	}
	if err != nil {
		httpx.WriteOAuthError(w, r, oauth.Wrap(err, "load user"))
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
