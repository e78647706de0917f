package grant

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/latchkey-dev/latchkey/internal/dpop"
	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/httpx"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// revoke implements token revocation (RFC 7009). Revoking a refresh token
// ends its whole family (and so every access token issued from it, as far
// as introspection can tell); revoking an access token makes it inactive.
// Unknown and already-invalid tokens answer 200 (§2.2).
func (h *Handler) revoke(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	form, err := httpx.ParseForm(w, r)
	if err != nil {
		return err
	}
	client, err := h.authenticateClient(r, form)
	if err != nil {
		return err
	}
	tok := form.Get("token")
	if tok == "" {
		return oauth.New(oauth.InvalidRequest, "The token parameter is missing.")
	}
	proof, err := h.proof(w, r, "/revoke")
	if err != nil {
		return err
	}
	// §2.1: the hint is a lookup optimisation; an unknown or wrong hint
	// falls back to the other type. With prefixed refresh tokens the format
	// tells the type, so the hint never changes the outcome.
	if token.IsRefreshToken(tok) {
		err = h.revokeRefresh(ctx, client, tok, proof)
	} else {
		err = h.revokeAccess(ctx, client, tok)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return nil
}

func errNotYours() *oauth.Error {
	return oauth.New(oauth.UnauthorizedClient, "This token was not issued to the authenticated client, which may not revoke it.")
}

func (h *Handler) revokeRefresh(ctx context.Context, client *store.Client, raw string, proof *dpop.Proof) error {
	fid, _, err := h.Refresh.Parse(raw)
	if err != nil {
		return nil // not ours: nothing to revoke
	}
	f, err := h.Store.GetFamily(ctx, fid)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return oauth.Wrap(err, "load family")
	}
	// RFC 7009 §2.1: a client may revoke only its own tokens.
	if f.ClientID != client.ID {
		return errNotYours()
	}
	// A DPoP-bound token is useless without its key — for revocation too,
	// so a thief cannot end the owner's sign-in with it.
	if err := checkBinding(f.DPoPJKT, proof); err != nil {
		return err
	}
	// Any generation of the family (even a rotated one) ends it: the
	// holder of an old token asking for revocation is no threat.
	if _, err := h.Families.End(ctx, store.FamilyFilter{ID: f.ID}, oauth.ReasonRevoked, "revocation endpoint"); err != nil {
		return oauth.Wrap(err, "revoke family")
	}
	return nil
}

func (h *Handler) revokeAccess(ctx context.Context, client *store.Client, raw string) error {
	if len(raw) > token.MaxLen {
		return nil
	}
	var c token.AccessClaims
	if err := h.Keys.Verify(ctx, raw, token.TypeAccess, &c); err != nil || c.Issuer != h.Issuer {
		return nil // not a token we issued
	}
	if c.ClientID != client.ID {
		return errNotYours()
	}
	exp := time.Unix(c.Expiry, 0)
	if !h.now().Before(exp) {
		return nil // already expired
	}
	if err := h.Store.RevokeAccessToken(ctx, c.ID, exp); err != nil {
		return oauth.Wrap(err, "revoke access token")
	}
	h.Families.Audit(ctx, &store.AuditEvent{Type: family.EventAccessRevoked, UserID: c.Subject, ClientID: c.ClientID, FamilyID: c.FamilyID, Reason: oauth.ReasonRevoked})
	return nil
}

// Introspection is the RFC 7662 §2.2 response. For refresh tokens, Expiry
// is when the token expires if unused (idle expiry, capped by the absolute
// one) and AbsoluteExpiry is the family's fixed deadline.
type Introspection struct {
	Active         bool   `json:"active"`
	Scope          string `json:"scope,omitempty"`
	ClientID       string `json:"client_id,omitempty"`
	Username       string `json:"username,omitempty"`
	TokenType      string `json:"token_type,omitempty"`
	Expiry         int64  `json:"exp,omitempty"`
	IssuedAt       int64  `json:"iat,omitempty"`
	Subject        string `json:"sub,omitempty"`
	Audience       any    `json:"aud,omitempty"`
	Issuer         string `json:"iss,omitempty"`
	ID             string `json:"jti,omitempty"`
	AuthTime       int64  `json:"auth_time,omitempty"`
	AbsoluteExpiry int64  `json:"absolute_exp,omitempty"`
	FamilyID       string `json:"fid,omitempty"`
	Confirmation   any    `json:"cnf,omitempty"`
}

// introspect implements RFC 7662 for authenticated confidential clients
// (resource servers are registered clients). Any such client may inspect
// access tokens; refresh tokens only by the client they were issued to.
func (h *Handler) introspect(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	form, err := httpx.ParseForm(w, r)
	if err != nil {
		return err
	}
	client, err := h.authenticateClient(r, form)
	if err != nil {
		return err
	}
	if client.Public {
		return invalidClient("Introspection requires a confidential client that authenticates.")
	}
	tok := form.Get("token")
	if tok == "" {
		return oauth.New(oauth.InvalidRequest, "The token parameter is missing.")
	}
	var resp *Introspection
	if token.IsRefreshToken(tok) {
		resp, err = h.introspectRefresh(ctx, client, tok)
	} else {
		resp, err = h.introspectAccess(ctx, tok)
	}
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
	return nil
}

var inactive = &Introspection{Active: false}

func (h *Handler) introspectAccess(ctx context.Context, raw string) (*Introspection, error) {
	c, _, u, err := ActiveAccessToken(ctx, h.Store, h.Keys, h.Issuer, h.now(), raw)
	if errors.Is(err, ErrInactive) {
		return inactive, nil
	}
	if err != nil {
		return nil, oauth.Wrap(err, "introspect access token")
	}
	resp := &Introspection{
		Active: true, Scope: c.Scope, ClientID: c.ClientID, TokenType: "access_token", Expiry: c.Expiry,
		IssuedAt: c.IssuedAt, Subject: c.Subject, Audience: c.Audience, Issuer: c.Issuer, ID: c.ID,
		AuthTime: c.AuthTime, FamilyID: c.FamilyID,
	}
	if c.Confirmation != nil {
		resp.Confirmation = c.Confirmation
	}
	if u != nil {
		resp.Username = u.Username
	}
	return resp, nil
}

func (h *Handler) introspectRefresh(ctx context.Context, client *store.Client, raw string) (*Introspection, error) {
	fid, gen, err := h.Refresh.Parse(raw)
	if err != nil {
		return inactive, nil
	}
	f, u, err := h.Store.GetFamilyWithUser(ctx, fid)
	if errors.Is(err, store.ErrNotFound) {
		return inactive, nil
	}
	if err != nil {
		return nil, oauth.Wrap(err, "load family")
	}
	now := h.now()
	// Only the current generation of a live, unexpired family is active; a
	// rotated token is not (its only remaining use is a grace-window retry).
	if f.ClientID != client.ID || !f.Offline || !f.RevokedAt.IsZero() || gen != f.Generation ||
		!now.Before(f.IdleExpiresAt) || !now.Before(f.AbsoluteExpiresAt) {
		return inactive, nil
	}
	resp := &Introspection{
		Active: true, Scope: oauth.JoinScope(f.Scopes), ClientID: f.ClientID, TokenType: "refresh_token",
		Expiry: f.IdleExpiresAt.Unix(), IssuedAt: f.RotatedAt.Unix(), Subject: f.UserID, Issuer: h.Issuer,
		AuthTime: f.AuthTime.Unix(), AbsoluteExpiry: f.AbsoluteExpiresAt.Unix(), FamilyID: f.ID,
	}
	if f.DPoPJKT != "" {
		resp.Confirmation = &token.Confirmation{JKT: f.DPoPJKT} // RFC 9449 §6.2
	}
	if u != nil {
		resp.Username = u.Username
	}
	return resp, nil
}
