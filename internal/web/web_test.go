package web

import (
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func newRenderer(t *testing.T) *Renderer {
	t.Helper()
	r, err := New("")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

var (
	t1 = time.Date(2024, 3, 5, 14, 7, 0, 0, time.FixedZone("CET", 3600))
	t2 = time.Date(2025, 11, 20, 9, 30, 0, 0, time.UTC)
)

func sampleAccount() AccountData {
	return AccountData{
		Username:      "alice",
		CSRFToken:     "csrf-acc",
		Flash:         "Access revoked for Old App.",
		SignOutAction: "/account/signout",
		Apps: []App{
			{
				ClientID: "photos", ClientName: "Photo Printer",
				Scopes:          Scopes([]string{"openid", "profile", "offline_access"}),
				FirstAuthorized: t1, LastUsed: t2,
				Offline: true, ActiveSessions: 2,
				RevokeAction: "/account/revoke",
			},
			{
				ClientID: "cli", ClientName: "",
				Scopes:          Scopes([]string{"openid"}),
				FirstAuthorized: t2,
				RevokeAction:    "/account/revoke",
			},
		},
		Extra: template.HTML(`<section id="mfa-extra">MFA</section>`),
	}
}

type page struct {
	name   string
	status int
	render func(*Renderer, http.ResponseWriter, int) error
	want   []string // substrings of the body
	absent []string // must not appear
}

func pages() []page {
	return []page{
		{
			name:   "login",
			status: http.StatusOK,
			render: func(r *Renderer, w http.ResponseWriter, s int) error {
				return r.Login(w, s, LoginData{
					ClientName: "Photo Printer",
					Action:     "/login",
					Hidden:     map[string]string{"request": "req-123", "a_first": "1"},
					CSRFToken:  "csrf-login",
				})
			},
			want: []string{
				`<form method="post" action="/login"`,
				`<label for="username">`, `id="username" name="username"`, `autocomplete="username"`,
				`<label for="password">`, `id="password" name="password" type="password" autocomplete="current-password" required`,
				`<input type="hidden" name="csrf_token" value="csrf-login">`,
				`<input type="hidden" name="request" value="req-123">`,
				`<h1>Sign in</h1>`, `to continue to <strong>Photo Printer</strong>`,
				`>Sign in</button>`,
			},
			absent: []string{`role="alert"`, `name="otp"`},
		},
		{
			name:   "login failed",
			status: http.StatusUnauthorized,
			render: func(r *Renderer, w http.ResponseWriter, s int) error {
				return r.Login(w, s, LoginData{Action: "/login", CSRFToken: "c", Username: "bob", Error: "Wrong username or password."})
			},
			want:   []string{`role="alert"`, `Wrong username or password.`, `value="bob"`, `name="password"`},
			absent: []string{`to continue to`},
		},
		{
			name:   "login otp",
			status: http.StatusOK,
			render: func(r *Renderer, w http.ResponseWriter, s int) error {
				return r.Login(w, s, LoginData{Action: "/login", CSRFToken: "c", Username: "bob", NeedOTP: true})
			},
			want: []string{
				`<input type="hidden" name="username" value="bob">`, `Signing in as <strong>bob</strong>`,
				`<label for="otp">`, `name="otp"`, `inputmode="numeric"`, `autocomplete="one-time-code"`,
			},
			absent: []string{`name="password"`, `pattern=`, `type="text" autocomplete="username"`},
		},
		{
			name:   "consent",
			status: http.StatusOK,
			render: func(r *Renderer, w http.ResponseWriter, s int) error {
				return r.Consent(w, s, ConsentData{
					ClientName: "Photo Printer", ClientID: "photos", Username: "alice",
					Scopes: Scopes([]string{"openid", "email", "offline_access"}),
					Action: "/consent", Hidden: map[string]string{"request": "req-9"}, CSRFToken: "csrf-consent",
				})
			},
			want: []string{
				`Photo Printer wants to access your account`, `Signed in as <strong>alice</strong>`,
				`<ul class="scopes"`, `See your email address`, `scope-offline`,
				`Stay connected when you&#39;re not using the app (until you revoke it)`,
				`<button type="submit" name="decision" value="allow"`, `>Allow</button>`,
				`<button type="submit" name="decision" value="deny"`, `>Deny</button>`,
				`name="csrf_token" value="csrf-consent"`, `name="request" value="req-9"`,
				`<form method="post" action="/consent"`,
			},
		},
		{
			name:   "account",
			status: http.StatusOK,
			render: func(r *Renderer, w http.ResponseWriter, s int) error { return r.Account(w, s, sampleAccount()) },
			want: []string{
				`Connected apps`, `Photo Printer`, `See your name and username`,
				`First authorized 5 Mar 2024 13:07 UTC`, `Last used 20 Nov 2025 09:30 UTC`, `Last used Never`,
				`Stays connected`, `2 active sessions`,
				`<form method="post" action="/account/revoke"`, `name="client_id" value="photos"`, `name="client_id" value="cli"`,
				`name="csrf_token" value="csrf-acc"`, `>Revoke access</button>`,
				`role="status"`, `Access revoked for Old App.`,
				`<form method="post" action="/account/signout"`, `>Sign out</button>`,
				`<section id="mfa-extra">MFA</section>`,
			},
			absent: []string{`No connected apps`},
		},
		{
			name:   "account empty",
			status: http.StatusOK,
			render: func(r *Renderer, w http.ResponseWriter, s int) error {
				return r.Account(w, s, AccountData{Username: "alice", CSRFToken: "c", SignOutAction: "/signout"})
			},
			want:   []string{`No connected apps`, `Signed in as <strong>alice</strong>`},
			absent: []string{`Revoke access`, `role="status"`},
		},
		{
			name:   "error",
			status: http.StatusBadRequest,
			render: func(r *Renderer, w http.ResponseWriter, s int) error {
				return r.Error(w, s, ErrorData{Title: "Invalid request", Message: "The link you followed has expired.", RequestID: "rid-42"})
			},
			want: []string{`<h1>Invalid request</h1>`, `The link you followed has expired.`, `rid-42`},
		},
		{
			name:   "home",
			status: http.StatusOK,
			render: func(r *Renderer, w http.ResponseWriter, s int) error {
				return r.Home(w, s, HomeData{
					Issuer: "https://id.example.com", SignedInAs: "alice",
					Links: []Link{{"Discovery document", "/.well-known/openid-configuration"}, {"Your account", "/account"}},
				})
			},
			want: []string{`https://id.example.com`, `href="/.well-known/openid-configuration"`, `Your account`, `Signed in as <strong>alice</strong>`},
		},
	}
}

func TestPages(t *testing.T) {
	r := newRenderer(t)
	common := []string{
		`<!doctype html>`, `<html lang="en">`, `<main id="main"`, `<header`, `<footer`,
		`name="viewport"`, `href="/static/style.css?v=`, `Latchkey`,
	}
	for _, p := range pages() {
		t.Run(p.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			if err := p.render(r, w, p.status); err != nil {
				t.Fatalf("render: %v", err)
			}
			res := w.Result()
			if res.StatusCode != p.status {
				t.Errorf("status = %d, want %d", res.StatusCode, p.status)
			}
			for k, v := range map[string]string{
				"Content-Type":            "text/html; charset=utf-8",
				"Cache-Control":           "no-store",
				"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
				"X-Frame-Options":         "DENY",
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
			} {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			body := w.Body.String()
			for _, s := range append(common, p.want...) {
				if !strings.Contains(body, s) {
					t.Errorf("body lacks %q", s)
				}
			}
			for _, s := range append([]string{"<script", "style=", "form-action", "ZgotmplZ"}, p.absent...) {
				if strings.Contains(body, s) {
					t.Errorf("body contains %q", s)
				}
			}
			checkLabels(t, body)
		})
	}
}

// checkLabels verifies every visible input has an id with a matching <label for>.
func checkLabels(t *testing.T, body string) {
	t.Helper()
	inputs := regexp.MustCompile(`<input [^>]*>`).FindAllString(body, -1)
	idRe := regexp.MustCompile(` id="([^"]+)"`)
	for _, in := range inputs {
		if strings.Contains(in, `type="hidden"`) {
			continue
		}
		m := idRe.FindStringSubmatch(in)
		if m == nil {
			t.Errorf("input without id: %s", in)
			continue
		}
		if !strings.Contains(body, `<label for="`+m[1]+`">`) {
			t.Errorf("input %q has no label", m[1])
		}
	}
}

func TestHiddenSorted(t *testing.T) {
	r := newRenderer(t)
	w := httptest.NewRecorder()
	err := r.Login(w, 200, LoginData{Hidden: map[string]string{"zeta": "z", "alpha": "a", "mid": "m"}})
	if err != nil {
		t.Fatal(err)
	}
	b := w.Body.String()
	a, m, z := strings.Index(b, `name="alpha"`), strings.Index(b, `name="mid"`), strings.Index(b, `name="zeta"`)
	if a < 0 || !(a < m && m < z) {
		t.Errorf("hidden inputs not sorted: alpha=%d mid=%d zeta=%d", a, m, z)
	}
	if strings.Contains(b, ` action=`) {
		t.Error("empty Action should omit the action attribute")
	}
}

func TestEscaping(t *testing.T) {
	r := newRenderer(t)
	const evil = `<script>alert("x")</script>`
	cases := []struct {
		name   string
		render func(http.ResponseWriter) error
	}{
		{"login", func(w http.ResponseWriter) error {
			return r.Login(w, 200, LoginData{ClientName: evil, Username: evil, Error: evil, Hidden: map[string]string{"k": `"><script>`}})
		}},
		{"login otp", func(w http.ResponseWriter) error {
			return r.Login(w, 200, LoginData{Username: evil, NeedOTP: true})
		}},
		{"consent", func(w http.ResponseWriter) error {
			return r.Consent(w, 200, ConsentData{ClientName: evil, ClientID: evil, Username: evil, Scopes: Scopes([]string{evil})})
		}},
		{"account", func(w http.ResponseWriter) error {
			return r.Account(w, 200, AccountData{Username: evil, Flash: evil, Apps: []App{{ClientID: evil, ClientName: evil, Scopes: Scopes([]string{evil})}}})
		}},
		{"error", func(w http.ResponseWriter) error {
			return r.Error(w, 500, ErrorData{Title: evil, Message: evil, RequestID: evil})
		}},
		{"home", func(w http.ResponseWriter) error {
			return r.Home(w, 200, HomeData{Issuer: evil, SignedInAs: evil, Links: []Link{{evil, "javascript:alert(1)"}}})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			if err := c.render(w); err != nil {
				t.Fatal(err)
			}
			b := w.Body.String()
			if strings.Contains(b, "<script") {
				t.Errorf("unescaped <script> in output")
			}
			if !strings.Contains(b, "&lt;script&gt;") {
				t.Errorf("escaped form not found")
			}
			if strings.Contains(b, `href="javascript:`) {
				t.Errorf("javascript: URL not sanitised")
			}
		})
	}
}

func TestOverrideDir(t *testing.T) {
	dir := t.TempDir()
	login := `{{define "title"}}Custom{{end}}{{define "content"}}<p id="custom">Hello {{.ClientName}}</p>{{end}}`
	if err := os.WriteFile(filepath.Join(dir, "login.html"), []byte(login), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "style.css"), []byte("body{color:red}"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := New(dir)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	w := httptest.NewRecorder()
	if err := r.Login(w, 200, LoginData{ClientName: "<b>"}); err != nil {
		t.Fatal(err)
	}
	b := w.Body.String()
	if !strings.Contains(b, `<p id="custom">Hello &lt;b&gt;</p>`) || !strings.Contains(b, "<title>Custom · Latchkey</title>") {
		t.Errorf("override not used:\n%s", b)
	}
	if strings.Contains(b, `name="password"`) {
		t.Error("embedded login content still rendered")
	}
	// Other pages keep the embedded template.
	w = httptest.NewRecorder()
	if err := r.Error(w, 500, ErrorData{Title: "Oops"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.Body.String(), "<h1>Oops</h1>") {
		t.Error("embedded error template not used")
	}
	// The static asset is overridden too.
	w = httptest.NewRecorder()
	r.StaticHandler().ServeHTTP(w, httptest.NewRequest("GET", "/static/style.css", nil))
	if w.Body.String() != "body{color:red}" {
		t.Errorf("style.css not overridden: %q", w.Body.String())
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing override dir: want error")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "consent.html"), []byte(`{{define "content"}}{{.Nope`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(dir); err == nil || !strings.Contains(err.Error(), "consent.html") {
		t.Errorf("broken template: err = %v", err)
	}
}

func TestTemplateErrorReturnedBeforeWrite(t *testing.T) {
	dir := t.TempDir()
	// Executes fine at parse time but fails at run time (unknown field).
	if err := os.WriteFile(filepath.Join(dir, "home.html"), []byte(`{{define "content"}}{{.NoSuchField}}{{end}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	if err := r.Home(w, 200, HomeData{}); err == nil {
		t.Fatal("want template error")
	}
	if w.Body.Len() != 0 || w.Header().Get("Content-Type") != "" {
		t.Error("nothing should be written on template error")
	}
	// The caller can still send an error page.
	if err := r.Error(w, 500, ErrorData{Title: "Oops"}); err != nil {
		t.Fatal(err)
	}
	if w.Code != 500 {
		t.Errorf("status = %d", w.Code)
	}
}

func TestDescribeScope(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"openid", "Sign you in with your Latchkey account"},
		{"profile", "See your name and username"},
		{"email", "See your email address"},
		{"offline_access", "Stay connected when you're not using the app (until you revoke it)"},
		{"photos.read", `Access "photos.read"`},
		{"", `Access ""`},
	} {
		if got := DescribeScope(c.in); got != c.want {
			t.Errorf("DescribeScope(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	got := Scopes([]string{"email", "openid", "x"})
	want := []Scope{{"email", "See your email address"}, {"openid", "Sign you in with your Latchkey account"}, {"x", `Access "x"`}}
	if len(got) != len(want) {
		t.Fatalf("Scopes = %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Scopes[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	if s := Scopes(nil); s == nil || len(s) != 0 {
		t.Errorf("Scopes(nil) = %#v, want empty non-nil", s)
	}
}

func TestStaticHandler(t *testing.T) {
	r := newRenderer(t)
	mux := http.NewServeMux()
	mux.Handle("/static/", r.StaticHandler())
	mux.Handle("/s2/", http.StripPrefix("/s2/", r.StaticHandler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, c := range []struct {
		method, path string
		status       int
		ctype        string
	}{
		{"GET", "/static/style.css", 200, "text/css; charset=utf-8"},
		{"GET", "/static/style.css?v=abc", 200, "text/css; charset=utf-8"},
		{"HEAD", "/static/style.css", 200, "text/css; charset=utf-8"},
		{"GET", "/s2/style.css", 200, "text/css; charset=utf-8"},
		{"GET", "/static/favicon.svg", 200, "image/svg+xml"},
		{"GET", "/static/nope.css", 404, ""},
		{"GET", "/static/", 404, ""},
		{"GET", "/static/style.css/", 404, ""},
		{"POST", "/static/style.css", 405, ""},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != c.status {
				t.Fatalf("status = %d, want %d", res.StatusCode, c.status)
			}
			if c.status != 200 {
				return
			}
			if got := res.Header.Get("Content-Type"); got != c.ctype {
				t.Errorf("Content-Type = %q, want %q", got, c.ctype)
			}
			if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=31536000") {
				t.Errorf("Cache-Control = %q", cc)
			}
			if res.Header.Get("ETag") == "" {
				t.Error("no ETag")
			}
			if c.method == "GET" && c.ctype == "text/css; charset=utf-8" && !strings.Contains(string(body), "--accent") {
				t.Error("unexpected CSS body")
			}
		})
	}

	// Conditional request.
	res, err := http.Get(srv.URL + "/static/style.css")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/static/style.css", nil)
	req.Header.Set("If-None-Match", res.Header.Get("ETag"))
	res2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
	if res2.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET status = %d, want 304", res2.StatusCode)
	}
}

func TestAssetURLVersioned(t *testing.T) {
	r := newRenderer(t)
	u, err := r.assetURL("style.css")
	if err != nil || !regexp.MustCompile(`^/static/style\.css\?v=[0-9a-f]{12}$`).MatchString(u) {
		t.Errorf("assetURL = %q, %v", u, err)
	}
	if _, err := r.assetURL("missing.css"); err == nil {
		t.Error("want error for unknown asset")
	}
}

func TestSetSecurityHeaders(t *testing.T) {
	h := http.Header{}
	SetSecurityHeaders(h)
	if csp := h.Get("Content-Security-Policy"); strings.Contains(csp, "form-action") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP = %q", csp)
	}
}
