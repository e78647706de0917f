// Package account serves /account, where signed-in users see the
// applications they have authorized — with scopes, when they first
// authorized them, when they last used them, and whether they hold offline
// access — and withdraw that access with one button.
package account

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/httpx"
	"github.com/latchkey-dev/latchkey/internal/mfa"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/session"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/web"
)

// Handler serves the account page.
type Handler struct {
	Store    store.Store
	Sessions *session.Manager
	Web      *web.Renderer
	Families *family.Service
	MFA      *mfa.Codec
	Log      *slog.Logger
	Now      func() time.Time
	// IssuerName labels TOTP entries in authenticator apps.
	IssuerName string
	// RevokeOnMFAEnroll / RevokeOnMFARemove end the user's families when a
	// second factor is enrolled / removed.
	RevokeOnMFAEnroll, RevokeOnMFARemove bool
}

// Mount registers the routes.
func (h *Handler) Mount(mux *http.ServeMux) {
	mux.Handle("GET /account", h.handle(h.page))
	mux.Handle("POST /account/revoke", h.handle(h.revoke))
	mux.Handle("GET /account/mfa/setup", h.handle(h.setupPage))
	mux.Handle("POST /account/mfa/setup", h.handle(h.setup))
	mux.Handle("GET /account/mfa/remove", h.handle(h.removePage))
	mux.Handle("POST /account/mfa/remove", h.handle(h.remove))
}

func (h *Handler) handle(fn httpx.HandlerFunc) http.Handler {
	return httpx.Handle(h.Log, func(w http.ResponseWriter, r *http.Request, err error) {
		e := oauth.As(err)
		msg := e.Description
		if e.Code == oauth.ServerError {
			msg = "The server could not complete the request. Please try again."
		}
		_ = h.Web.Error(w, e.HTTPStatus(), web.ErrorData{Title: "Something went wrong", Message: msg, RequestID: httpx.RequestID(r.Context())})
	}, fn)
}

// user returns the signed-in, enabled user, or nil.
func (h *Handler) user(r *http.Request) (*store.User, error) {
	sess, err := h.Sessions.Current(r.Context(), r)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, oauth.Wrap(err, "load session")
	}
	u, err := h.Store.GetUser(r.Context(), sess.UserID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled) {
		return nil, nil
	}
	if err != nil {
		return nil, oauth.Wrap(err, "load user")
	}
	return u, nil
}

func (h *Handler) page(w http.ResponseWriter, r *http.Request) error {
	u, err := h.user(r)
	if err != nil {
		return err
	}
	if u == nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil
	}
	grants, err := operator.Grants(r.Context(), h.Store, u.ID, h.Now())
	if err != nil {
		return oauth.Wrap(err, "list grants")
	}
	d := web.AccountData{Username: u.Username, CSRFToken: h.Sessions.CSRFToken(w, r), SignOutAction: "/logout",
		MFAEnrolled: u.TOTPSecret != nil, MFASetupURL: "/account/mfa/setup", MFARemoveURL: "/account/mfa/remove"}
	if id := r.URL.Query().Get("revoked"); id != "" && len(id) <= 256 {
		name := id
		if c, err := h.Store.GetClient(r.Context(), id); err == nil && c.Name != "" {
			name = c.Name
		}
		d.Flash = "Access for " + name + " was revoked. It will have to ask you again."
	}
	for _, g := range grants {
		d.Apps = append(d.Apps, web.App{
			ClientID: g.ClientID, ClientName: g.ClientName, Scopes: web.Scopes(g.Scopes),
			FirstAuthorized: g.FirstAuthorized, LastUsed: g.LastUsed, Offline: g.Offline,
			ActiveSessions: g.LiveFamilies, RevokeAction: "/account/revoke",
		})
	}
	return h.Web.Account(w, http.StatusOK, d)
}

// signedInPost parses a form post, checks its CSRF token and returns the
// signed-in user. When nobody is signed in it redirects to the sign-in page
// and returns a nil user and nil error.
func (h *Handler) signedInPost(w http.ResponseWriter, r *http.Request) (url.Values, *store.User, error) {
	form, err := httpx.ParseForm(w, r)
	if err != nil {
		return nil, nil, err
	}
	if err := h.Sessions.CheckCSRF(r, form.Get("csrf_token")); err != nil {
		return nil, nil, oauth.New(oauth.AccessDenied, "The form expired or was submitted from another site. Go back, reload the page and try again.").WithStatus(http.StatusForbidden)
	}
	u, err := h.user(r)
	if err != nil {
		return nil, nil, err
	}
	if u == nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	}
	return form, u, nil
}

// revoke withdraws the user's consent for one client.
func (h *Handler) revoke(w http.ResponseWriter, r *http.Request) error {
	form, u, err := h.signedInPost(w, r)
	if err != nil || u == nil {
		return err
	}
	clientID := form.Get("client_id")
	if clientID == "" || len(clientID) > 256 {
		return oauth.New(oauth.InvalidRequest, "No application was selected.")
	}
	if err := operator.RevokeGrant(r.Context(), h.Store, h.Families, u.ID, clientID, "revoked by the user on the account page"); err != nil {
		return oauth.Wrap(err, "revoke grant")
	}
	http.Redirect(w, r, "/account?revoked="+url.QueryEscape(clientID), http.StatusSeeOther)
	return nil
}
