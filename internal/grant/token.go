// Package grant implements the token endpoint (RFC 6749 §3.2, §4.1.3, §6):
// client authentication, one dispatcher, and one file per grant type. The
// refresh grant is where Latchkey's rotation, reuse detection and grace
// window live (refresh.go).
package grant

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey-dev/latchkey/internal/dpop"
	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/httpx"
	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/secret"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/throttle"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// Lifetimes are the server-wide token lifetimes.
type Lifetimes struct {
	AccessToken     time.Duration
	IDToken         time.Duration
	RefreshIdle     time.Duration
	RefreshAbsolute time.Duration
	// RefreshGrace is how long after a rotation a replay of the predecessor
	// is answered with the same successor.
	RefreshGrace time.Duration
}

// Handler serves the token endpoint.
type Handler struct {
	Store    store.Store
	Keys     *keys.Manager
	Refresh  *token.RefreshCodec
	Families *family.Service
	Log      *slog.Logger
	Issuer   string
	Life     Lifetimes
	Now      func() time.Time
	// DPoP verifies DPoP proofs (RFC 9449); nil refuses them.
	DPoP *dpop.Verifier
	// Throttle counts failed client authentications (nil: no limit).
	Throttle *throttle.Limiter
}

// authenticateClient authenticates the request's client with every method
// (private_key_jwt included), throttling failures.
func (h *Handler) authenticateClient(r *http.Request, form url.Values) (*store.Client, error) {
	a := &ClientAuth{Store: h.Store, Issuer: h.Issuer, Now: h.Now, Throttle: h.Throttle}
	return a.Authenticate(r.Context(), r, form)
}

// proof verifies the request's DPoP proof for endpoint (nil, nil without
// one). With nonces enabled it also sends the current nonce.
func (h *Handler) proof(w http.ResponseWriter, r *http.Request, endpoint string) (*dpop.Proof, error) {
	if h.DPoP == nil {
		if r.Header.Get("DPoP") != "" {
			return nil, dpop.Invalid("DPoP is not supported by this server.")
		}
		return nil, nil
	}
	if n := h.DPoP.Nonce(); n != "" {
		w.Header().Set("DPoP-Nonce", n)
	}
	p, err := h.DPoP.Verify(r.Context(), r, dpop.Request{Method: r.Method, URL: h.Issuer + endpoint})
	if errors.Is(err, dpop.ErrNoProof) {
		return nil, nil
	}
	return p, err
}

// jkt is the thumbprint tokens are bound to: the proof's, or "".
func jkt(p *dpop.Proof) string {
	if p == nil {
		return ""
	}
	return p.JKT
}

// Mount registers the routes.
func (h *Handler) Mount(mux *http.ServeMux) {
	mux.Handle("/token", httpx.Handle(h.Log, httpx.WriteOAuthError, h.token))
	mux.Handle("/revoke", httpx.Handle(h.Log, httpx.WriteOAuthError, h.revoke))
	mux.Handle("/introspect", httpx.Handle(h.Log, httpx.WriteOAuthError, h.introspect))
}

// Response is the successful token response (RFC 6749 §5.1, OIDC Core
// §3.1.3.3). RefreshExpiresIn is the time left before the refresh token
// expires if unused (idle expiry, capped by the absolute expiry);
// RefreshAbsoluteExpiresAt is the family's fixed deadline (Unix seconds).
type Response struct {
	AccessToken              string `json:"access_token"`
	TokenType                string `json:"token_type"`
	ExpiresIn                int64  `json:"expires_in"`
	Scope                    string `json:"scope,omitempty"`
	IDToken                  string `json:"id_token,omitempty"`
	RefreshToken             string `json:"refresh_token,omitempty"`
	RefreshExpiresIn         int64  `json:"refresh_token_expires_in,omitempty"`
	RefreshAbsoluteExpiresAt int64  `json:"refresh_token_absolute_expires_at,omitempty"`
}

func (h *Handler) now() time.Time { return h.Now().UTC().Truncate(time.Millisecond) }

func (h *Handler) token(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	form, err := httpx.ParseForm(w, r)
	if err != nil {
		return err
	}
	// RFC 6749 §3.2: credentials in the query string are refused.
	if r.URL.RawQuery != "" {
		return oauth.New(oauth.InvalidRequest, "Send token request parameters in the POST body, not in the URL.")
	}
	gt := form.Get("grant_type")
	if gt == "" {
		return oauth.New(oauth.InvalidRequest, "The grant_type parameter is missing.")
	}
	client, err := h.authenticateClient(r, form)
	if err != nil {
		return err
	}
	// RFC 9449 §5: a proof, when sent, binds what is issued to its key.
	proof, err := h.proof(w, r, "/token")
	if err != nil {
		return err
	}
	if proof == nil && client.RequireDPoP {
		return dpop.Invalid("This client must send a DPoP proof (RFC 9449) with every token request.")
	}
	var resp *Response
	switch gt {
	case "authorization_code":
		if !slices.Contains(client.GrantTypes, gt) {
			return oauth.New(oauth.UnauthorizedClient, "This client may not use the authorization_code grant.")
		}
		resp, err = h.authorizationCode(ctx, client, form, proof)
	case "refresh_token":
		if !slices.Contains(client.GrantTypes, gt) {
			return oauth.New(oauth.UnauthorizedClient, "This client may not use the refresh_token grant.")
		}
		resp, err = h.refreshToken(ctx, client, form, proof)
	default:
		return oauth.New(oauth.UnsupportedGrantType, "Supported grant types are authorization_code and refresh_token.")
	}
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
	return nil
}

// mint signs the access token (and ID token when openid was granted) for a
// family and fills resp. scopes is the access token's scope (the family's,
// or narrower on refresh); nonce is only set at the code exchange; jkt, when
// set, binds the access token to a DPoP key (cnf.jkt, token_type DPoP).
func (h *Handler) mint(ctx context.Context, f *store.Family, client *store.Client, user *store.User, scopes []string, nonce, jkt string, now time.Time) (*Response, error) {
	iat := now.Unix()
	at := token.AccessClaims{
		Issuer: h.Issuer, Subject: f.UserID, Audience: []string{client.ID},
		IssuedAt: iat, Expiry: now.Add(h.Life.AccessToken).Unix(), ID: secret.Random(16),
		ClientID: client.ID, Scope: oauth.JoinScope(scopes),
		AuthTime: f.AuthTime.Unix(), ACR: f.ACR, AMR: f.AMR, FamilyID: f.ID,
	}
	tokenType := "Bearer"
	if jkt != "" {
		at.Confirmation = &token.Confirmation{JKT: jkt}
		tokenType = "DPoP" // RFC 9449 §5
	}
	// RFC 9068 access tokens are always signed with signing_alg.
	access, err := h.Keys.Sign(ctx, h.Keys.Alg, token.TypeAccess, at)
	if err != nil {
		return nil, oauth.Wrap(err, "sign access token")
	}
	resp := &Response{AccessToken: access, TokenType: tokenType, ExpiresIn: int64(h.Life.AccessToken / time.Second), Scope: oauth.JoinScope(scopes)}
	if slices.Contains(f.Scopes, oauth.ScopeOpenID) {
		// The client's id_token_signed_response_alg, or signing_alg.
		alg := jose.SignatureAlgorithm(client.IDTokenAlg)
		if alg == "" {
			alg = h.Keys.Alg
		}
		idc := token.IDClaims{
			Issuer: h.Issuer, Subject: f.UserID, Audience: []string{client.ID},
			IssuedAt: iat, Expiry: now.Add(h.Life.IDToken).Unix(), AuthTime: f.AuthTime.Unix(),
			Nonce: nonce, ACR: f.ACR, AMR: f.AMR, AccessTokenHash: token.AccessTokenHash(string(alg), access),
		}
		if slices.Contains(scopes, oauth.ScopeProfile) {
			idc.Name, idc.PreferredUsername = user.Name, user.Username
		}
		if slices.Contains(scopes, oauth.ScopeEmail) {
			idc.Email = user.Email
		}
		var err error
		if resp.IDToken, err = h.Keys.Sign(ctx, alg, token.TypeID, idc); err != nil {
			return nil, oauth.Wrap(err, "sign ID token")
		}
	}
	return resp, nil
}

// withRefresh adds the refresh token for generation gen and its expiries.
func (h *Handler) withRefresh(resp *Response, f *store.Family, gen int64, now time.Time) (*Response, error) {
	rt, err := h.Refresh.Mint(f.ID, gen)
	if err != nil {
		return nil, oauth.Wrap(err, "mint refresh token")
	}
	resp.RefreshToken = rt
	resp.RefreshExpiresIn = max(int64(f.IdleExpiresAt.Sub(now)/time.Second), 1)
	resp.RefreshAbsoluteExpiresAt = f.AbsoluteExpiresAt.Unix()
	return resp, nil
}

// refreshLifetimes returns the client's refresh lifetimes (its overrides or
// the server defaults).
func (h *Handler) refreshLifetimes(c *store.Client) (idle, absolute time.Duration) {
	idle, absolute = h.Life.RefreshIdle, h.Life.RefreshAbsolute
	if c.RefreshIdle > 0 {
		idle = c.RefreshIdle
	}
	if c.RefreshAbsolute > 0 {
		absolute = c.RefreshAbsolute
	}
	return idle, absolute
}
