package account

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"

	"github.com/latchkey-dev/latchkey/internal/mfa"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/web"
)

// continueURL is where to go after enrollment: back into an authorization
// request that needed MFA, or to the account page.
func continueURL(reqID string) string {
	if reqID == "" || len(reqID) > 64 {
		return "/account"
	}
	return "/authorize/continue?request=" + url.QueryEscape(reqID)
}

// setupPage shows a new TOTP key as a QR code and the manual key. The
// unconfirmed secret travels sealed in the form, so no server state is kept
// between showing it and checking the first code.
func (h *Handler) setupPage(w http.ResponseWriter, r *http.Request) error {
	u, err := h.user(r)
	if err != nil {
		return err
	}
	reqID := r.URL.Query().Get("request")
	if u == nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil
	}
	if u.TOTPSecret != nil {
		http.Redirect(w, r, continueURL(reqID), http.StatusSeeOther)
		return nil
	}
	key, err := mfa.NewKey(h.IssuerName, u.Username)
	if err != nil {
		return oauth.Wrap(err, "generate TOTP key")
	}
	return h.renderSetup(w, r, http.StatusOK, u, key.Secret(), reqID, "")
}

func (h *Handler) renderSetup(w http.ResponseWriter, r *http.Request, status int, u *store.User, secretB32, reqID, msg string) error {
	key, err := mfa.KeyURL(h.IssuerName, u.Username, secretB32)
	if err != nil {
		return oauth.Wrap(err, "TOTP key")
	}
	qr, err := mfa.QRDataURI(key)
	if err != nil {
		return oauth.Wrap(err, "QR code")
	}
	d := web.MFAData{
		Mode: "setup", Title: "Set up two-step verification", Error: msg,
		QR: template.URL(qr), ManualKey: secretB32, Action: "/account/mfa/setup", CSRFToken: h.Sessions.CSRFToken(w, r),
		Hidden: map[string]string{"pending": h.MFA.SealPending(u.ID, secretB32)},
	}
	if reqID != "" {
		d.Subtitle = "The application you are signing in to requires it."
		d.Hidden["request"] = reqID
	}
	return h.Web.MFA(w, status, d)
}

// setup confirms enrollment with a first code, stores the factor, upgrades
// the session to MFA, and shows the recovery codes once.
func (h *Handler) setup(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	form, u, err := h.signedInPost(w, r)
	if err != nil || u == nil {
		return err
	}
	reqID := form.Get("request")
	secretB32, err := h.MFA.OpenPending(u.ID, form.Get("pending"))
	if err != nil {
		return oauth.New(oauth.InvalidRequest, "The setup form expired. Start again from your account page.")
	}
	now := h.Now()
	step := mfa.CheckTOTP(secretB32, form.Get("otp"), now, 0)
	if step < 0 {
		return h.renderSetup(w, r, http.StatusBadRequest, u, secretB32, reqID, "That code is not valid. Check your phone's time and enter the newest code.")
	}
	codes, hashes := mfa.NewRecoveryCodes()
	if _, err := h.Store.UpdateUser(ctx, u.ID, func(u *store.User) error {
		if u.TOTPSecret != nil {
			return errAlreadyEnrolled
		}
		u.TOTPSecret = h.MFA.Seal(u.ID, &mfa.Factor{Secret: secretB32, Recovery: hashes, LastStep: step})
		u.UpdatedAt = now
		if h.RevokeOnMFAEnroll {
			u.CredentialEpoch++
		}
		return nil
	}); errors.Is(err, errAlreadyEnrolled) {
		http.Redirect(w, r, continueURL(reqID), http.StatusSeeOther)
		return nil
	} else if err != nil {
		return oauth.Wrap(err, "store second factor")
	}
	if h.RevokeOnMFAEnroll {
		// Sign every other browser out too; this one gets a new session below.
		if err := h.Store.DeleteUserSessions(ctx, u.ID); err != nil {
			return oauth.Wrap(err, "end sessions")
		}
		if err := operator.EndForCredentials(ctx, h.Families, u.ID, "second factor enrolled"); err != nil {
			return oauth.Wrap(err, "end families")
		}
	}
	// The user just proved both factors: the session becomes an MFA one.
	if _, err := h.Sessions.Start(ctx, w, r, u.ID, []string{oauth.AMRPassword, oauth.AMROTP, oauth.AMRMFA}, oauth.ACRMFA); err != nil {
		return oauth.Wrap(err, "start session")
	}
	return h.Web.MFA(w, http.StatusOK, web.MFAData{Mode: "codes", Title: "Save your recovery codes", Codes: codes, ContinueURL: continueURL(reqID)})
}

var errAlreadyEnrolled = errors.New("already enrolled")

func (h *Handler) removePage(w http.ResponseWriter, r *http.Request) error {
	u, err := h.user(r)
	if err != nil {
		return err
	}
	if u == nil || u.TOTPSecret == nil {
		http.Redirect(w, r, "/account", http.StatusSeeOther)
		return nil
	}
	return h.Web.MFA(w, http.StatusOK, web.MFAData{Mode: "remove", Title: "Turn off two-step verification", Action: "/account/mfa/remove", CSRFToken: h.Sessions.CSRFToken(w, r)})
}

// remove turns the second factor off after checking a current code.
func (h *Handler) remove(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	form, u, err := h.signedInPost(w, r)
	if err != nil || u == nil {
		return err
	}
	now := h.Now()
	ok, err := h.MFA.VerifyUser(ctx, h.Store, u.ID, form.Get("otp"), now)
	if err != nil {
		return oauth.Wrap(err, "verify second factor")
	}
	if !ok {
		return h.Web.MFA(w, http.StatusBadRequest, web.MFAData{Mode: "remove", Title: "Turn off two-step verification", Error: "That code is not valid.", Action: "/account/mfa/remove", CSRFToken: h.Sessions.CSRFToken(w, r)})
	}
	if _, err := h.Store.UpdateUser(ctx, u.ID, func(u *store.User) error {
		u.TOTPSecret, u.UpdatedAt = nil, now
		if h.RevokeOnMFARemove {
			u.CredentialEpoch++
		}
		return nil
	}); err != nil {
		return oauth.Wrap(err, "remove second factor")
	}
	if h.RevokeOnMFARemove {
		if err := h.Store.DeleteUserSessions(ctx, u.ID); err != nil {
			return oauth.Wrap(err, "end sessions")
		}
		if err := operator.EndForCredentials(ctx, h.Families, u.ID, "second factor removed"); err != nil {
			return oauth.Wrap(err, "end families")
		}
	}
	// This browser stays signed in, now as a password-only sign-in.
	if _, err := h.Sessions.Start(ctx, w, r, u.ID, []string{oauth.AMRPassword}, oauth.ACRPassword); err != nil {
		return oauth.Wrap(err, "start session")
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
	return nil
}
