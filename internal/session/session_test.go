package session

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/secret"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/testdb"
)

var csrfKey = []byte("0123456789abcdef0123456789abcdef")

func newManager(t *testing.T, secure bool) *Manager {
	t.Helper()
	return &Manager{Store: testdb.SQLite(t), Now: time.Now, TTL: 2 * time.Hour, Secure: secure, CSRFKey: csrfKey}
}

// cookieNamed returns the Set-Cookie named name from rec.
func cookieNamed(t *testing.T, rec *httptest.ResponseRecorder, name string) *http.Cookie {
	t.Helper()
	for _, c := range rec.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no Set-Cookie %q in %v", name, rec.Result().Header["Set-Cookie"])
	return nil
}

func requestWith(cookies ...*http.Cookie) *http.Request {
	r := httptest.NewRequest("POST", "/login", nil)
	for _, c := range cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	return r
}

func TestCSRF(t *testing.T) {
	m := newManager(t, false)
	rec := httptest.NewRecorder()
	tok := m.CSRFToken(rec, httptest.NewRequest("GET", "/login", nil))
	cookie := cookieNamed(t, rec, "latchkey_csrf")
	if len(cookie.Value) != 43 || tok == "" || tok == cookie.Value {
		t.Fatalf("cookie %q, token %q", cookie.Value, tok)
	}
	if cookie.MaxAge != 0 || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/" {
		t.Errorf("CSRF cookie attributes: %+v", cookie)
	}

	// The browser comes back with its cookie: the same token, no new cookie.
	rec2 := httptest.NewRecorder()
	if tok2 := m.CSRFToken(rec2, requestWith(cookie)); tok2 != tok {
		t.Errorf("token changed for the same cookie: %q vs %q", tok2, tok)
	}
	if len(rec2.Result().Cookies()) != 0 {
		t.Error("CSRF cookie re-set although the browser had one")
	}

	otherCookie := &http.Cookie{Name: "latchkey_csrf", Value: secret.Random(32)}
	// Change the last character (to one it is not already: 1 token in 16
	// ends in "A").
	wrong := tok[:42] + "A"
	if tok[42] == 'A' {
		wrong = tok[:42] + "Q"
	}
	tests := []struct {
		name  string
		req   *http.Request
		token string
		ok    bool
	}{
		{"right", requestWith(cookie), tok, true},
		{"wrong token", requestWith(cookie), wrong, false},
		{"token of another cookie", requestWith(otherCookie), tok, false},
		{"cookie value as token", requestWith(cookie), cookie.Value, false},
		{"empty token", requestWith(cookie), "", false},
		{"missing cookie", requestWith(), tok, false},
		{"empty cookie", requestWith(&http.Cookie{Name: "latchkey_csrf", Value: ""}), tok, false},
		{"prefixed cookie on an http manager", requestWith(&http.Cookie{Name: "__Host-latchkey_csrf", Value: cookie.Value}), tok, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := m.CheckCSRF(tt.req, tt.token)
			if tt.ok && err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrCSRF) {
				t.Fatalf("got %v, want ErrCSRF", err)
			}
		})
	}

	// Another key (another deployment) does not accept the token.
	m2 := &Manager{Store: m.Store, Now: time.Now, CSRFKey: []byte("another key, another deployment!")}
	if err := m2.CheckCSRF(requestWith(cookie), tok); !errors.Is(err, ErrCSRF) {
		t.Errorf("token valid under another key: %v", err)
	}
}

func TestCSRFTokenReplacesMalformedCookie(t *testing.T) {
	m := newManager(t, false)
	for _, v := range []string{"short", strings.Repeat("x", 44)} {
		rec := httptest.NewRecorder()
		tok := m.CSRFToken(rec, requestWith(&http.Cookie{Name: "latchkey_csrf", Value: v}))
		c := cookieNamed(t, rec, "latchkey_csrf")
		if c.Value == v || len(c.Value) != 43 {
			t.Errorf("cookie %q kept or bad: %q", v, c.Value)
		}
		if err := m.CheckCSRF(requestWith(c), tok); err != nil {
			t.Errorf("token for the new cookie: %v", err)
		}
	}
}

func TestCSRFSecureUsesHostPrefix(t *testing.T) {
	m := newManager(t, true)
	rec := httptest.NewRecorder()
	tok := m.CSRFToken(rec, httptest.NewRequest("GET", "/login", nil))
	c := cookieNamed(t, rec, "__Host-latchkey_csrf")
	if !c.Secure || c.Path != "/" || c.Domain != "" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
		t.Errorf("__Host- cookie attributes: %+v", c)
	}
	if err := m.CheckCSRF(requestWith(c), tok); err != nil {
		t.Errorf("right token: %v", err)
	}
	// An unprefixed cookie (settable by a sibling subdomain) is ignored.
	if err := m.CheckCSRF(requestWith(&http.Cookie{Name: "latchkey_csrf", Value: c.Value}), tok); !errors.Is(err, ErrCSRF) {
		t.Errorf("unprefixed cookie accepted on a Secure manager: %v", err)
	}
}

func TestStartAndCurrent(t *testing.T) {
	ctx := context.Background()
	m := newManager(t, false)
	rec := httptest.NewRecorder()
	s, err := m.Start(ctx, rec, httptest.NewRequest("POST", "/login", nil), "user-1", []string{"pwd"}, "urn:latchkey:acr:password")
	if err != nil {
		t.Fatal(err)
	}
	c := cookieNamed(t, rec, "latchkey_session")
	if len(c.Value) != 43 {
		t.Errorf("session cookie value %q", c.Value)
	}
	if s.ID != secret.SHA256(c.Value) || s.ID == c.Value {
		t.Error("the store id is not the SHA-256 of the cookie value")
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure || c.Path != "/" || c.MaxAge != 7200 {
		t.Errorf("session cookie attributes: %+v", c)
	}
	if s.UserID != "user-1" || !slices.Equal(s.AMR, []string{"pwd"}) || s.ACR != "urn:latchkey:acr:password" ||
		s.ExpiresAt.Sub(s.CreatedAt) != 2*time.Hour || s.AuthTime.Nanosecond() != 0 {
		t.Errorf("session %+v", s)
	}

	got, err := m.Current(ctx, requestWith(c))
	if err != nil || got.ID != s.ID || got.UserID != "user-1" {
		t.Fatalf("Current = %+v, %v", got, err)
	}
	for name, r := range map[string]*http.Request{
		"no cookie":     requestWith(),
		"unknown value": requestWith(&http.Cookie{Name: "latchkey_session", Value: secret.Random(32)}),
		"the stored id": requestWith(&http.Cookie{Name: "latchkey_session", Value: s.ID}),
		"oversized":     requestWith(&http.Cookie{Name: "latchkey_session", Value: strings.Repeat("a", 129)}),
		"prefixed name": requestWith(&http.Cookie{Name: "__Host-latchkey_session", Value: c.Value}),
		"csrf cookie":   requestWith(&http.Cookie{Name: "latchkey_csrf", Value: c.Value}),
		"empty value":   requestWith(&http.Cookie{Name: "latchkey_session", Value: ""}),
	} {
		if _, err := m.Current(ctx, r); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: Current = %v, want ErrNotFound", name, err)
		}
	}
}

func TestStartReplacesExistingSession(t *testing.T) {
	ctx := context.Background()
	m := newManager(t, false)
	rec1 := httptest.NewRecorder()
	s1, err := m.Start(ctx, rec1, httptest.NewRequest("POST", "/login", nil), "user-1", []string{"pwd"}, "a")
	if err != nil {
		t.Fatal(err)
	}
	old := cookieNamed(t, rec1, "latchkey_session")

	// Signing in again with the old cookie present (e.g. as another user).
	rec2 := httptest.NewRecorder()
	s2, err := m.Start(ctx, rec2, requestWith(old), "user-2", []string{"pwd", "otp"}, "b")
	if err != nil {
		t.Fatal(err)
	}
	fresh := cookieNamed(t, rec2, "latchkey_session")
	if fresh.Value == old.Value || s2.ID == s1.ID {
		t.Fatal("the session id was not replaced (session fixation)")
	}
	if _, err := m.Current(ctx, requestWith(old)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old session still valid: %v", err)
	}
	if _, err := m.Store.GetSession(ctx, s1.ID, time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old session row still in the store: %v", err)
	}
	got, err := m.Current(ctx, requestWith(fresh))
	if err != nil || got.UserID != "user-2" {
		t.Errorf("new session: %+v %v", got, err)
	}
}

func TestSessionExpires(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	m := newManager(t, false)
	m.Now = func() time.Time { return now }
	rec := httptest.NewRecorder()
	if _, err := m.Start(ctx, rec, httptest.NewRequest("POST", "/", nil), "u", []string{"pwd"}, "a"); err != nil {
		t.Fatal(err)
	}
	c := cookieNamed(t, rec, "latchkey_session")
	now = now.Add(2*time.Hour + time.Second)
	if _, err := m.Current(ctx, requestWith(c)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired session accepted: %v", err)
	}
}

func TestEnd(t *testing.T) {
	ctx := context.Background()
	m := newManager(t, true)
	rec := httptest.NewRecorder()
	s, err := m.Start(ctx, rec, httptest.NewRequest("POST", "/", nil), "u", []string{"pwd"}, "a")
	if err != nil {
		t.Fatal(err)
	}
	c := cookieNamed(t, rec, "__Host-latchkey_session")
	if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
		t.Errorf("secure session cookie attributes: %+v", c)
	}
	out := httptest.NewRecorder()
	m.End(ctx, out, requestWith(c))
	cleared := cookieNamed(t, out, "__Host-latchkey_session")
	if cleared.Value != "" || cleared.MaxAge >= 0 || !cleared.Secure {
		t.Errorf("End cookie: %+v", cleared)
	}
	if _, err := m.Store.GetSession(ctx, s.ID, time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session row survives End: %v", err)
	}
	// Ending without a session still clears the cookie and does not fail.
	out = httptest.NewRecorder()
	m.End(ctx, out, requestWith())
	cookieNamed(t, out, "__Host-latchkey_session")
}
