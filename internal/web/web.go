// Package web renders Latchkey's user-facing HTML pages: sign-in, consent,
// the account page, errors and the landing page.
//
// Templates and static assets are embedded and parsed once by New. Every
// page is the shared layout (layout.html) plus one page file that defines
// the "title" and "content" templates (and optionally "page-class"). An
// operator may pass an override directory: a file there with the same name
// as an embedded one (login.html, layout.html, style.css, ...) replaces it.
//
// The pages use no JavaScript and load nothing from other origins, so they
// work under the strict Content-Security-Policy set by SetSecurityHeaders.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

//go:embed templates/*.html static/*
var embedded embed.FS

// Names of the page templates; each is parsed on top of layout.html.
const (
	layoutFile  = "layout.html"
	loginFile   = "login.html"
	consentFile = "consent.html"
	accountFile = "account.html"
	errorFile   = "error.html"
	homeFile    = "home.html"
	mfaFile     = "mfa.html"
)

var pageFiles = []string{loginFile, consentFile, accountFile, errorFile, homeFile, mfaFile}

// DateLayout is how dates are shown on the account page (always in UTC).
const DateLayout = "2 Jan 2006 15:04 UTC"

// contentSecurityPolicy deliberately has no form-action directive: Chrome
// applies form-action to the redirect that follows a form post, which would
// block the OAuth redirect back to the client.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'"

// Renderer renders the HTML pages. It is safe for concurrent use.
type Renderer struct {
	pages  map[string]*template.Template
	assets map[string]asset
	// staticPrefix is the URL path static assets are linked under in the
	// pages ("/static/", where StaticHandler is meant to be mounted).
	staticPrefix string
}

type asset struct {
	body        []byte
	contentType string
	etag        string // quoted strong ETag (content hash)
	version     string // short content hash used to bust caches in URLs
}

// New parses the embedded templates; if overrideDir != "" any file there
// with the same name replaces the embedded one (templates and static
// assets alike). A missing or unreadable override directory is an error.
func New(overrideDir string) (*Renderer, error) {
	if overrideDir != "" {
		fi, err := os.Stat(overrideDir)
		if err != nil {
			return nil, fmt.Errorf("web: override dir: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("web: override dir %q is not a directory", overrideDir)
		}
	}
	r := &Renderer{
		pages:        make(map[string]*template.Template, len(pageFiles)),
		assets:       make(map[string]asset),
		staticPrefix: "/static/",
	}

	// Static assets first: the templates link to them by content hash.
	staticNames, err := fs.Glob(embedded, "static/*")
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	for _, p := range staticNames {
		name := path.Base(p)
		body, err := load(overrideDir, p)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(body)
		h := hex.EncodeToString(sum[:])
		r.assets[name] = asset{
			body:        body,
			contentType: contentType(name),
			etag:        `"` + h[:32] + `"`,
			version:     h[:12],
		}
	}

	base := template.New(layoutFile).Funcs(template.FuncMap{
		"asset":          r.assetURL,
		"date":           formatDate,
		"lastUsed":       formatLastUsed,
		"initial":        initial,
		"appName":        appName,
		"isOffline":      func(s Scope) bool { return s.Name == "offline_access" },
		"pluralSessions": pluralSessions,
	})
	src, err := load(overrideDir, "templates/"+layoutFile)
	if err != nil {
		return nil, err
	}
	if _, err := base.Parse(string(src)); err != nil {
		return nil, fmt.Errorf("web: parse %s: %w", layoutFile, err)
	}
	for _, name := range pageFiles {
		src, err := load(overrideDir, "templates/"+name)
		if err != nil {
			return nil, err
		}
		t, err := base.Clone()
		if err != nil {
			return nil, fmt.Errorf("web: %w", err)
		}
		if _, err := t.New(name).Parse(string(src)); err != nil {
			return nil, fmt.Errorf("web: parse %s: %w", name, err)
		}
		r.pages[name] = t
	}
	return r, nil
}

// load returns the override file for embedded path p if one exists, else
// the embedded file.
func load(overrideDir, p string) ([]byte, error) {
	if overrideDir != "" {
		b, err := os.ReadFile(filepath.Join(overrideDir, path.Base(p)))
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("web: override: %w", err)
		}
	}
	b, err := embedded.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	return b, nil
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

// assetURL is the "asset" template function: the URL of a static asset,
// versioned by content hash so it can be cached for a long time.
func (r *Renderer) assetURL(name string) (string, error) {
	a, ok := r.assets[name]
	if !ok {
		return "", fmt.Errorf("web: unknown static asset %q", name)
	}
	return r.staticPrefix + name + "?v=" + a.version, nil
}

// SetSecurityHeaders sets the headers used on every HTML response.
func SetSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// render executes page into a buffer first, so a template error leaves the
// response untouched (the caller can still send an error page), then writes
// headers, status and body.
func (r *Renderer) render(w http.ResponseWriter, status int, page string, data any) error {
	t, ok := r.pages[page]
	if !ok {
		return fmt.Errorf("web: no template %q", page)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, layoutFile, data); err != nil {
		return fmt.Errorf("web: render %s: %w", page, err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	SetSecurityHeaders(h)
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// Login renders the sign-in page.
func (r *Renderer) Login(w http.ResponseWriter, status int, d LoginData) error {
	return r.render(w, status, loginFile, d)
}

// Consent renders the consent page.
func (r *Renderer) Consent(w http.ResponseWriter, status int, d ConsentData) error {
	return r.render(w, status, consentFile, d)
}

// Account renders the account page.
func (r *Renderer) Account(w http.ResponseWriter, status int, d AccountData) error {
	return r.render(w, status, accountFile, d)
}

// Error renders an error page.
func (r *Renderer) Error(w http.ResponseWriter, status int, d ErrorData) error {
	return r.render(w, status, errorFile, d)
}

// MFA renders the two-step verification pages (setup, recovery codes, removal).
func (r *Renderer) MFA(w http.ResponseWriter, status int, d MFAData) error {
	return r.render(w, status, mfaFile, d)
}

// MFAData is the data for the two-step verification pages.
type MFAData struct {
	Mode        string // "setup", "codes" or "remove"
	Title       string
	Subtitle    string
	Error       string
	QR          template.URL // a data:image/png URI
	ManualKey   string
	Action      string
	Hidden      map[string]string
	CSRFToken   string
	Codes       []string
	ContinueURL string
}

// Home renders the landing page.
func (r *Renderer) Home(w http.ResponseWriter, status int, d HomeData) error {
	return r.render(w, status, homeFile, d)
}

// StaticHandler serves the static assets (style.css, favicon.svg) with long
// cache headers. Mount it at "/static/", with or without
// http.StripPrefix: the asset is chosen by the last path segment. Pages link
// assets with a content-hash query string, so a changed file gets a new URL.
func (r *Renderer) StaticHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := req.URL.Path
		name := path.Base(p)
		a, ok := r.assets[name]
		if !ok || strings.HasSuffix(p, "/") {
			http.NotFound(w, req)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("ETag", a.etag)
		http.ServeContent(w, req, name, time.Time{}, bytes.NewReader(a.body))
	})
}

// LoginData is the data for the sign-in page.
type LoginData struct {
	ClientName string            // app the user is signing in to; may be empty
	Action     string            // form action URL (POST); empty posts to the current URL
	Hidden     map[string]string // extra hidden inputs, rendered sorted by key
	CSRFToken  string            // hidden input "csrf_token"
	Username   string            // prefill after a failed attempt
	Error      string            // shown in an alert region above the form
	// NeedOTP asks for a one-time (or recovery) code in an input named
	// "otp" instead of the password; the username is carried as a hidden
	// input and shown as read-only text.
	NeedOTP bool
}

// ConsentData is the data for the consent page.
type ConsentData struct {
	ClientName string
	ClientID   string
	Username   string  // who is signed in
	Scopes     []Scope // requested scopes
	Action     string
	Hidden     map[string]string
	CSRFToken  string
}

// Scope is a scope name with its plain-words description.
type Scope struct{ Name, Description string }

// AccountData is the data for the account page.
type AccountData struct {
	Username      string
	CSRFToken     string
	Flash         string // success message after an action (role="status")
	Apps          []App
	SignOutAction string        // POST target of the sign-out form
	Extra         template.HTML // reserved for later sections; rendered if non-empty
	// MFAEnrolled tells whether two-step verification is on; the section
	// links to MFASetupURL or posts to MFARemoveURL.
	MFAEnrolled  bool
	MFASetupURL  string
	MFARemoveURL string
}

// App is one connected application on the account page.
type App struct {
	ClientID, ClientName string
	Scopes               []Scope
	FirstAuthorized      time.Time
	LastUsed             time.Time // zero = never
	Offline              bool      // holds offline access (a refresh token)
	ActiveSessions       int       // number of live refresh-token families
	RevokeAction         string    // POST target; the form carries csrf_token and client_id
}

// ErrorData is the data for the error page.
type ErrorData struct {
	Title, Message string
	RequestID      string
}

// HomeData is the data for the landing page.
type HomeData struct {
	Issuer     string
	SignedInAs string
	Links      []Link
}

// Link is a link on the landing page.
type Link struct{ Text, URL string }

// DescribeScope returns plain-words text for a scope, for the consent and
// account pages.
func DescribeScope(scope string) string {
	switch scope {
	case "openid":
		return "Sign you in with your Latchkey account"
	case "profile":
		return "See your name and username"
	case "email":
		return "See your email address"
	case "offline_access":
		return "Stay connected when you're not using the app (until you revoke it)"
	}
	return fmt.Sprintf("Access %q", scope)
}

// Scopes maps DescribeScope over names, keeping their order.
func Scopes(names []string) []Scope {
	out := make([]Scope, 0, len(names))
	for _, n := range names {
		out = append(out, Scope{Name: n, Description: DescribeScope(n)})
	}
	return out
}

func formatDate(t time.Time) string {
	return t.UTC().Format(DateLayout)
}

func formatLastUsed(t time.Time) string {
	if t.IsZero() {
		return "Never"
	}
	return formatDate(t)
}

func pluralSessions(n int) string {
	if n == 1 {
		return "1 active session"
	}
	return fmt.Sprintf("%d active sessions", n)
}

// initial is the upper-cased first letter or digit of s, for avatar tiles.
func initial(s string) string {
	for _, c := range s {
		if unicode.IsLetter(c) || unicode.IsDigit(c) {
			return string(unicode.ToUpper(c))
		}
	}
	if c, _ := utf8.DecodeRuneInString(s); c != utf8.RuneError {
		return string(c)
	}
	return "?"
}

// appName is the name to show for an app: its name, else its client id.
func appName(name, clientID string) string {
	if strings.TrimSpace(name) != "" {
		return name
	}
	if clientID != "" {
		return clientID
	}
	return "An application"
}
