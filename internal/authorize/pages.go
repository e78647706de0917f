package authorize

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/httpx"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/secret"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/web"
)

// badCredentials is the one message for every failed sign-in, so the page
// never tells whether a username exists.
const badCredentials = "The username or password is incorrect."

// throttled is the message for a throttled attempt; it reads the same for
// every account, existing or not.
func throttled(wait time.Duration) string {
	return fmt.Sprintf("Too many failed attempts. Try again in %d minutes.", int(wait.Minutes())+1)
}

func errCSRF() error {
	return noRedirect(oauth.New(oauth.AccessDenied, "The form expired or was submitted from another site. Go back, reload the page and try again.").WithStatus(http.StatusForbidden))
}

// clientName is the name to show for a request's client.
func (h *Handler) clientName(r *http.Request, clientID string) string {
	c, err := h.Store.GetClient(r.Context(), clientID)
	if err != nil {
		return clientID
	}
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

// renderSignIn shows the sign-in form: the password step, or the
// second-factor step when needOTP is set.
func (h *Handler) renderSignIn(w http.ResponseWriter, r *http.Request, status int, reqID, username, msg string, needOTP bool) error {
	d := web.LoginData{Action: "/login", CSRFToken: h.Sessions.CSRFToken(w, r), Username: username, Error: msg, NeedOTP: needOTP}
	if reqID != "" {
		req, err := h.loadRequest(r.Context(), reqID)
		if err != nil {
			return err
		}
		d.ClientName = h.clientName(r, req.ClientID)
		d.Hidden = map[string]string{"request": reqID}
	}
	return h.Web.Login(w, status, d)
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	// Step-up: a signed-in user whose request needs a second factor is
	// asked for the code only (the session already proved the password).
	if q.Get("step") == "otp" {
		sess, user, err := h.currentUser(r.Context(), r)
		if err != nil {
			return err
		}
		if sess != nil && user.TOTPSecret != nil {
			h.Sessions.SetPending(w, user.ID)
			return h.renderOTP(w, r, http.StatusOK, q.Get("request"), user.Username, "")
		}
	}
	return h.renderLogin(w, r, http.StatusOK, q.Get("request"), "", "")
}

func (h *Handler) renderLogin(w http.ResponseWriter, r *http.Request, status int, reqID, username, msg string) error {
	return h.renderSignIn(w, r, status, reqID, username, msg, false)
}

func (h *Handler) renderOTP(w http.ResponseWriter, r *http.Request, status int, reqID, username, msg string) error {
	return h.renderSignIn(w, r, status, reqID, username, msg, true)
}

// next sends the browser on after a completed sign-in.
func next(w http.ResponseWriter, r *http.Request, reqID string) {
	if reqID == "" {
		http.Redirect(w, r, "/account", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/authorize/continue?request="+url.QueryEscape(reqID), http.StatusSeeOther)
}

// login checks the password (then, for enrolled users, the second factor)
// and starts a browser session.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	form, err := httpx.ParseForm(w, r)
	if err != nil {
		return noRedirect(oauth.As(err))
	}
	if err := h.Sessions.CheckCSRF(r, form.Get("csrf_token")); err != nil {
		return errCSRF()
	}
	reqID := form.Get("request")
	if form.Has("otp") {
		return h.loginOTP(w, r, reqID, form.Get("otp"))
	}
	username, password := form.Get("username"), form.Get("password")
	if username == "" || password == "" || len(username) > 256 || len(password) > secret.MaxSecret {
		return h.renderLogin(w, r, http.StatusBadRequest, reqID, trunc(username), "Enter your username and password.")
	}
	if wait := h.Throttle.Check(ctx, r, username); wait > 0 {
		return h.renderLogin(w, r, http.StatusTooManyRequests, reqID, username, throttled(wait))
	}
	user, err := h.Store.GetUserByUsername(ctx, username)
	switch {
	case errors.Is(err, store.ErrNotFound):
		secret.BurnPasswordCheck(password) // same time as a wrong password
		h.Throttle.Fail(ctx, r, username)
		return h.renderLogin(w, r, http.StatusUnauthorized, reqID, username, badCredentials)
	case err != nil:
		return oauth.Wrap(err, "load user")
	}
	if !secret.VerifyPassword(user.PasswordHash, password) || user.Disabled {
		h.Throttle.Fail(ctx, r, username)
		return h.renderLogin(w, r, http.StatusUnauthorized, reqID, username, badCredentials)
	}
	if user.TOTPSecret != nil {
		h.Sessions.SetPending(w, user.ID)
		return h.renderOTP(w, r, http.StatusOK, reqID, user.Username, "")
	}
	h.Throttle.Succeed(ctx, r, username)
	if _, err := h.Sessions.Start(ctx, w, r, user.ID, []string{oauth.AMRPassword}, oauth.ACRPassword); err != nil {
		return oauth.Wrap(err, "start session")
	}
	next(w, r, reqID)
	return nil
}

// loginOTP finishes a sign-in with the second factor.
func (h *Handler) loginOTP(w http.ResponseWriter, r *http.Request, reqID, code string) error {
	ctx := r.Context()
	uid, ok := h.Sessions.Pending(r)
	if !ok {
		return h.renderLogin(w, r, http.StatusUnauthorized, reqID, "", "Your sign-in timed out. Enter your password again.")
	}
	user, err := h.Store.GetUser(ctx, uid)
	if err != nil || user.Disabled {
		return h.renderLogin(w, r, http.StatusUnauthorized, reqID, "", "Your sign-in timed out. Enter your password again.")
	}
	if wait := h.Throttle.Check(ctx, r, user.Username); wait > 0 {
		return h.renderOTP(w, r, http.StatusTooManyRequests, reqID, user.Username, throttled(wait))
	}
	ok, err = h.MFA.VerifyUser(ctx, h.Store, user.ID, code, h.now())
	if err != nil {
		return oauth.Wrap(err, "verify second factor")
	}
	if !ok {
		h.Throttle.Fail(ctx, r, user.Username)
		return h.renderOTP(w, r, http.StatusUnauthorized, reqID, user.Username, "That code is not valid. Try the newest code from your app.")
	}
	h.Throttle.Succeed(ctx, r, user.Username)
	h.Sessions.ClearPending(w)
	if _, err := h.Sessions.Start(ctx, w, r, user.ID, []string{oauth.AMRPassword, oauth.AMROTP, oauth.AMRMFA}, oauth.ACRMFA); err != nil {
		return oauth.Wrap(err, "start session")
	}
	next(w, r, reqID)
	return nil
}

func (h *Handler) consentPage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	req, err := h.loadRequest(ctx, r.URL.Query().Get("request"))
	if err != nil {
		return err
	}
	sess, user, err := h.currentUser(ctx, r)
	if err != nil {
		return err
	}
	if sess == nil {
		http.Redirect(w, r, "/login?request="+url.QueryEscape(req.ID), http.StatusSeeOther)
		return nil
	}
	return h.Web.Consent(w, http.StatusOK, web.ConsentData{
		ClientName: h.clientName(r, req.ClientID), ClientID: req.ClientID, Username: user.Username,
		Scopes: web.Scopes(req.Scopes), Action: "/consent",
		Hidden: map[string]string{"request": req.ID}, CSRFToken: h.Sessions.CSRFToken(w, r),
	})
}

// consent records the user's decision and finishes the flow.
func (h *Handler) consent(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	form, err := httpx.ParseForm(w, r)
	if err != nil {
		return noRedirect(oauth.As(err))
	}
	if err := h.Sessions.CheckCSRF(r, form.Get("csrf_token")); err != nil {
		return errCSRF()
	}
	req, err := h.loadRequest(ctx, form.Get("request"))
	if err != nil {
		return err
	}
	sess, user, err := h.currentUser(ctx, r)
	if err != nil {
		return err
	}
	if sess == nil {
		http.Redirect(w, r, "/login?request="+url.QueryEscape(req.ID), http.StatusSeeOther)
		return nil
	}
	switch form.Get("decision") {
	case "allow":
	case "deny":
		_ = h.Store.DeleteAuthRequest(ctx, req.ID)
		return &redirectError{redirectURI: req.RedirectURI, state: req.State, err: oauth.New(oauth.AccessDenied, "The user denied the request.")}
	default:
		return noRedirect(oauth.New(oauth.InvalidRequest, "Choose Allow or Deny."))
	}
	now := h.now()
	scopes := req.Scopes
	if old, err := h.Store.GetConsent(ctx, user.ID, req.ClientID); err == nil {
		for _, s := range old.Scopes {
			if !slices.Contains(scopes, s) {
				scopes = append(slices.Clip(scopes), s)
			}
		}
	}
	if err := h.Store.PutConsent(ctx, &store.Consent{UserID: user.ID, ClientID: req.ClientID, Scopes: scopes, CreatedAt: now, UpdatedAt: now}); err != nil {
		return oauth.Wrap(err, "store consent")
	}
	h.Families.Audit(ctx, &store.AuditEvent{Type: family.EventConsent, UserID: user.ID, ClientID: req.ClientID, Detail: oauth.JoinScope(req.Scopes)})
	return h.issueCode(w, r, req, sess)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) error {
	form, err := httpx.ParseForm(w, r)
	if err != nil {
		return noRedirect(oauth.As(err))
	}
	if err := h.Sessions.CheckCSRF(r, form.Get("csrf_token")); err != nil {
		return errCSRF()
	}
	h.Sessions.End(r.Context(), w, r)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}
