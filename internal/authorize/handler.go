package authorize

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/httpx"
	"github.com/latchkey-dev/latchkey/internal/mfa"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/secret"
	"github.com/latchkey-dev/latchkey/internal/session"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/throttle"
	"github.com/latchkey-dev/latchkey/internal/token"
	"github.com/latchkey-dev/latchkey/internal/web"
)

// CodePrefix starts every authorization code (for secret scanners).
const CodePrefix = "lkac_"

// requestTTL bounds how long a user may take to sign in and consent.
const requestTTL = 15 * time.Minute

// Handler serves /authorize, /login, /consent and /logout.
type Handler struct {
	Store    store.Store
	Sessions *session.Manager
	Web      *web.Renderer
	Families *family.Service
	Throttle *throttle.Limiter
	MFA      *mfa.Codec
	Log      *slog.Logger
	Issuer   string
	CodeTTL  time.Duration
	Now      func() time.Time
}

// Mount registers the routes.
func (h *Handler) Mount(mux *http.ServeMux) {
	mux.Handle("GET /authorize", h.page(h.authorize))
	mux.Handle("POST /authorize", h.page(h.authorize))
	mux.Handle("GET /authorize/continue", h.page(h.continueFlow))
	mux.Handle("GET /login", h.page(h.loginPage))
	mux.Handle("POST /login", h.page(h.login))
	mux.Handle("GET /consent", h.page(h.consentPage))
	mux.Handle("POST /consent", h.page(h.consent))
	mux.Handle("POST /logout", h.page(h.logout))
}

// page adapts a handler whose errors are shown as HTML pages (or, for
// redirectable authorization errors, sent to the client).
func (h *Handler) page(fn httpx.HandlerFunc) http.Handler {
	return httpx.Handle(h.Log, h.renderError, fn)
}

func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, err error) {
	var re *redirectError
	if errors.As(err, &re) {
		redirectTo(w, r, re.redirectURI, url.Values{"error": {re.err.Code}, "error_description": {re.err.Description}, "state": {re.state}, "iss": {h.Issuer}})
		return
	}
	e := oauth.As(err)
	title := "Something went wrong"
	msg := e.Description
	switch {
	case e.HTTPStatus() >= 500: // server_error, or temporarily_unavailable (database)
		msg = "The server could not complete the request. Please try again."
	case e.HTTPStatus() == http.StatusForbidden:
		title = "Request refused"
	default:
		title = "This sign-in link is not valid"
	}
	_ = h.Web.Error(w, e.HTTPStatus(), web.ErrorData{Title: title, Message: msg, RequestID: httpx.RequestID(r.Context())})
}

func (h *Handler) now() time.Time { return h.Now().UTC().Truncate(time.Millisecond) }

// authorize validates a new authorization request and stores it, so that any
// instance can continue the flow.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var params url.Values
	if r.Method == http.MethodPost {
		// OIDC Core §3.1.2.1: POST with form serialization is allowed.
		form, err := httpx.ParseForm(w, r)
		if err != nil {
			return noRedirect(oauth.As(err))
		}
		params = form
	} else {
		if len(r.URL.RawQuery) > 16<<10 {
			return noRedirect(oauth.New(oauth.InvalidRequest, "The request is too long."))
		}
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return noRedirect(oauth.New(oauth.InvalidRequest, "The request query string is malformed."))
		}
		params = q
	}
	req, _, err := parse(params, func(id string) (*store.Client, error) { return h.Store.GetClient(ctx, id) })
	if err != nil {
		return err
	}
	now := h.now()
	req.ID = secret.Random(18)
	req.CreatedAt, req.ExpiresAt = now, now.Add(requestTTL)
	if err := h.Store.CreateAuthRequest(ctx, req); err != nil {
		return oauth.Wrap(err, "store authorization request")
	}
	return h.resume(w, r, req)
}

func (h *Handler) loadRequest(ctx context.Context, id string) (*store.AuthRequest, error) {
	if id == "" || len(id) > 64 {
		return nil, noRedirect(oauth.New(oauth.InvalidRequest, "This sign-in link is incomplete. Go back to the application and try again."))
	}
	req, err := h.Store.GetAuthRequest(ctx, id, h.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, noRedirect(oauth.New(oauth.InvalidRequest, "This sign-in request has expired or was already completed. Go back to the application and try again."))
	}
	if err != nil {
		return nil, oauth.Wrap(err, "load authorization request")
	}
	return req, nil
}

func (h *Handler) continueFlow(w http.ResponseWriter, r *http.Request) error {
	req, err := h.loadRequest(r.Context(), r.URL.Query().Get("request"))
	if err != nil {
		return err
	}
	return h.resume(w, r, req)
}

// resume decides what the request needs next: sign-in, consent, or a code.
func (h *Handler) resume(w http.ResponseWriter, r *http.Request, req *store.AuthRequest) error {
	ctx := r.Context()
	fail := func(e *oauth.Error) error {
		_ = h.Store.DeleteAuthRequest(ctx, req.ID)
		return &redirectError{redirectURI: req.RedirectURI, state: req.State, err: e}
	}
	sess, user, err := h.currentUser(ctx, r)
	if err != nil {
		return err
	}
	// OIDC Core §3.1.2.1: prompt=login and max_age demand a sign-in made for
	// this request (or recent enough). A session created after the request
	// was made always satisfies them.
	if sess != nil && sess.CreatedAt.Before(req.CreatedAt) {
		if slices.Contains(req.Prompt, "login") ||
			(req.MaxAge >= 0 && h.now().Sub(sess.AuthTime) > time.Duration(req.MaxAge)*time.Second) {
			sess = nil
		}
	}
	if sess == nil {
		if slices.Contains(req.Prompt, "none") {
			return fail(oauth.New(oauth.LoginRequired, "The user is not signed in."))
		}
		http.Redirect(w, r, "/login?request="+url.QueryEscape(req.ID), http.StatusSeeOther)
		return nil
	}
	// The client's authentication policy, or acr_values asking for MFA
	// (OIDC Core §3.1.2.1), need a session with a second factor.
	client, err := h.Store.GetClient(ctx, req.ClientID)
	if err != nil {
		return fail(oauth.New(oauth.InvalidRequest, "The application is no longer registered.").WithCause(err))
	}
	if (client.RequireMFA || slices.Contains(req.ACRValues, oauth.ACRMFA)) && sess.ACR != oauth.ACRMFA {
		if slices.Contains(req.Prompt, "none") {
			return fail(oauth.New(oauth.InteractionRequired, "This application requires two-step verification; the user must sign in interactively."))
		}
		if user.TOTPSecret != nil {
			http.Redirect(w, r, "/login?step=otp&request="+url.QueryEscape(req.ID), http.StatusSeeOther)
		} else {
			// Not enrolled yet: walk the user through enrollment first.
			http.Redirect(w, r, "/account/mfa/setup?request="+url.QueryEscape(req.ID), http.StatusSeeOther)
		}
		return nil
	}
	consent, err := h.Store.GetConsent(ctx, user.ID, req.ClientID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return oauth.Wrap(err, "load consent")
	}
	if consent == nil || !oauth.Subset(req.Scopes, consent.Scopes) || slices.Contains(req.Prompt, "consent") {
		if slices.Contains(req.Prompt, "none") {
			return fail(oauth.New(oauth.ConsentRequired, "The user has not consented to the requested scopes."))
		}
		http.Redirect(w, r, "/consent?request="+url.QueryEscape(req.ID), http.StatusSeeOther)
		return nil
	}
	return h.issueCode(w, r, req, sess)
}

// currentUser returns the signed-in session and its (enabled) user, or nils.
func (h *Handler) currentUser(ctx context.Context, r *http.Request) (*store.Session, *store.User, error) {
	sess, err := h.Sessions.Current(ctx, r)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, oauth.Wrap(err, "load session")
	}
	user, err := h.Store.GetUser(ctx, sess.UserID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && user.Disabled) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, oauth.Wrap(err, "load user")
	}
	return sess, user, nil
}

// issueCode issues a single-use authorization code and redirects to the
// client (RFC 6749 §4.1.2).
func (h *Handler) issueCode(w http.ResponseWriter, r *http.Request, req *store.AuthRequest, sess *store.Session) error {
	ctx := r.Context()
	code := CodePrefix + secret.Random(32)
	now := h.now()
	ac := &store.AuthCode{
		ID: secret.SHA256(code), ClientID: req.ClientID, UserID: sess.UserID, RedirectURI: req.RedirectURI,
		Nonce: req.Nonce, CodeChallenge: req.CodeChallenge, Scopes: req.Scopes,
		AuthTime: sess.AuthTime, AMR: sess.AMR, ACR: sess.ACR,
		FamilyID: token.NewFamilyID(randRead), DPoPJKT: req.DPoPJKT,
		CreatedAt: now, ExpiresAt: now.Add(h.CodeTTL),
	}
	if err := h.Store.CreateAuthCode(ctx, ac); err != nil {
		return oauth.Wrap(err, "store authorization code")
	}
	if err := h.Store.DeleteAuthRequest(ctx, req.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		h.Log.Warn("delete authorization request", slog.Any("error", err))
	}
	redirectTo(w, r, req.RedirectURI, url.Values{"code": {code}, "state": {req.State}, "iss": {h.Issuer}})
	return nil
}
