// Package session owns the browser side: the sign-in session cookie (whose
// value is stored only as a SHA-256 hash) and CSRF protection for every form
// (a signed double-submit token bound to a cookie, plus Go's
// Sec-Fetch-Site/Origin check).
package session

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey-dev/latchkey/internal/secret"
	"github.com/latchkey-dev/latchkey/internal/store"
)

// Manager issues and reads browser sessions.
type Manager struct {
	Store store.Store
	Now   func() time.Time
	TTL   time.Duration
	// Secure marks cookies Secure (and uses the __Host- prefix): true when
	// the issuer is https.
	Secure bool
	// CSRFKey signs CSRF tokens (derived from the master key).
	CSRFKey []byte
}

func (m *Manager) cookieName(base string) string {
	if m.Secure {
		return "__Host-" + base
	}
	return base
}

func (m *Manager) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: m.cookieName(name), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: m.Secure, SameSite: http.SameSiteLaxMode,
	})
}

// Current returns the signed-in session, or store.ErrNotFound.
func (m *Manager) Current(ctx context.Context, r *http.Request) (*store.Session, error) {
	c, err := r.Cookie(m.cookieName("latchkey_session"))
	if err != nil || len(c.Value) == 0 || len(c.Value) > 128 {
		return nil, store.ErrNotFound
	}
	return m.Store.GetSession(ctx, secret.SHA256(c.Value), m.Now())
}

// Start signs the user in: it creates a session and sets its cookie. An
// existing session cookie is replaced (no session fixation).
func (m *Manager) Start(ctx context.Context, w http.ResponseWriter, r *http.Request, userID string, amr []string, acr string) (*store.Session, error) {
	if old, err := m.Current(ctx, r); err == nil {
		_ = m.Store.DeleteSession(ctx, old.ID)
	}
	value := secret.Random(32)
	now := m.Now().UTC().Truncate(time.Millisecond)
	s := &store.Session{ID: secret.SHA256(value), UserID: userID, AuthTime: now.Truncate(time.Second), AMR: amr, ACR: acr, CreatedAt: now, ExpiresAt: now.Add(m.TTL)}
	if err := m.Store.CreateSession(ctx, s); err != nil {
		return nil, err
	}
	m.setCookie(w, "latchkey_session", value, int(m.TTL.Seconds()))
	return s, nil
}

// End signs the browser out.
func (m *Manager) End(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	if s, err := m.Current(ctx, r); err == nil {
		_ = m.Store.DeleteSession(ctx, s.ID)
	}
	m.setCookie(w, "latchkey_session", "", -1)
}

// CSRFToken returns the token to embed in a form, setting the CSRF cookie if
// the browser has none yet.
func (m *Manager) CSRFToken(w http.ResponseWriter, r *http.Request) string {
	var v string
	if c, err := r.Cookie(m.cookieName("latchkey_csrf")); err == nil && len(c.Value) == 43 {
		v = c.Value
	} else {
		v = secret.Random(32)
		m.setCookie(w, "latchkey_csrf", v, 0)
	}
	return m.sign("csrf|" + v) // purpose prefix: never the same input as another signed value
}

func (m *Manager) sign(v string) string {
	h := hmac.New(sha256.New, m.CSRFKey)
	h.Write([]byte(v))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// ErrCSRF is returned when a form post fails the CSRF check.
var ErrCSRF = errors.New("session: CSRF check failed")

// CheckCSRF verifies a posted csrf_token against the cookie in constant time.
func (m *Manager) CheckCSRF(r *http.Request, token string) error {
	c, err := r.Cookie(m.cookieName("latchkey_csrf"))
	if err != nil || c.Value == "" || token == "" {
		return ErrCSRF
	}
	if !hmac.Equal([]byte(token), []byte(m.sign("csrf|"+c.Value))) {
		return ErrCSRF
	}
	return nil
}

// pendingTTL bounds the step between a correct password and the second factor.
const pendingTTL = 5 * time.Minute

// SetPending records, in a signed cookie, that userID passed the password
// step and must now give a second factor. A cookie (not server memory)
// keeps every instance able to finish the sign-in.
func (m *Manager) SetPending(w http.ResponseWriter, userID string) {
	exp := strconv.FormatInt(m.Now().Add(pendingTTL).Unix(), 10)
	payload := base64.RawURLEncoding.EncodeToString([]byte(userID + "|" + exp))
	m.setCookie(w, "latchkey_mfa", payload+"."+m.sign("mfa|"+payload), int(pendingTTL.Seconds()))
}

// Pending returns the user id of a pending second-factor step.
func (m *Manager) Pending(r *http.Request) (string, bool) {
	c, err := r.Cookie(m.cookieName("latchkey_mfa"))
	if err != nil || len(c.Value) > 512 {
		return "", false
	}
	payload, sig, ok := strings.Cut(c.Value, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(m.sign("mfa|"+payload))) {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return "", false
	}
	userID, exp, ok := strings.Cut(string(raw), "|")
	n, err := strconv.ParseInt(exp, 10, 64)
	if !ok || err != nil || m.Now().Unix() > n {
		return "", false
	}
	return userID, true
}

// ClearPending removes the pending second-factor cookie.
func (m *Manager) ClearPending(w http.ResponseWriter) { m.setCookie(w, "latchkey_mfa", "", -1) }
