package app

import (
	"bytes"
	"html/template"
	"log/slog"
	"net/http"
	"time"
)

// page is what the one HTML template shows.
type page struct {
	Error   string // something went wrong (role=alert)
	Notice  string // neutral information (role=status)
	Revoked string // Latchkey ended the grant (role=alert)

	SignedIn bool
	Profile  *UserInfo
	Name     string

	AccessLeft    string // e.g. "9m 58s"
	RefreshBefore string
	Refreshes     int
	LastRefresh   string
	AccountURL    string
	Issuer        string
}

func (a *App) profilePage(s *Session, info *UserInfo) page {
	p := page{
		SignedIn: true, Profile: info, Name: s.Name,
		AccessLeft:    s.AccessExpiry.Sub(a.now()).Truncate(time.Second).String(),
		RefreshBefore: a.cfg.RefreshBefore.String(),
		Refreshes:     s.Refreshes,
		AccountURL:    a.accountURL,
		Issuer:        a.cfg.Issuer,
	}
	if !s.LastRefresh.IsZero() {
		p.LastRefresh = s.LastRefresh.UTC().Format("15:04:05 UTC")
	}
	return p
}

var tmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{if .SignedIn}}{{.Name}} · {{end}}Example web app</title>
<link rel="stylesheet" href="/app.css">
<link rel="icon" href="data:,">
</head>
<body>
<main>
<h1>Example web app</h1>
<p class="lead">A server-side application that signs you in with Latchkey and keeps its refresh token on its backend.</p>
{{with .Revoked}}<div class="box box-revoked" role="alert" id="revoked"><p>{{.}}</p></div>{{end}}
{{with .Error}}<div class="box box-error" role="alert" id="error"><p>{{.}}</p></div>{{end}}
{{with .Notice}}<div class="box" role="status"><p>{{.}}</p></div>{{end}}
{{if .SignedIn}}
<h2>Hello, <span id="profile-name">{{.Name}}</span></h2>
<p>Your profile, fetched from Latchkey's userinfo endpoint with the app's access token:</p>
<table id="profile">
<tr><th scope="row">sub</th><td id="profile-sub"><code>{{.Profile.Subject}}</code></td></tr>
<tr><th scope="row">name</th><td id="profile-fullname">{{.Profile.Name}}</td></tr>
<tr><th scope="row">preferred_username</th><td id="profile-username">{{.Profile.PreferredUsername}}</td></tr>
<tr><th scope="row">email</th><td id="profile-email">{{.Profile.Email}}</td></tr>
</table>
<h2>Tokens</h2>
<ul id="tokens">
<li>The access token expires in <strong id="access-left">{{.AccessLeft}}</strong>. The app refreshes it when less than {{.RefreshBefore}} is left, once per session however many requests arrive at that moment.</li>
<li>Refreshes in this session: <strong id="refreshes">{{.Refreshes}}</strong>{{with .LastRefresh}} (last at {{.}}){{end}}. Each one rotates the refresh token; the app stores the new one before it uses the new access token.</li>
<li>The refresh token is stored encrypted (AES-256-GCM) on the app's server. Your browser only has a random session id in an HttpOnly cookie.</li>
</ul>
<h2>Try revoking</h2>
<p>Open <a id="account-link" href="{{.AccountURL}}" target="_blank" rel="noopener">your Latchkey account</a>, press <em>Revoke access</em> for this app, then reload this page: the access token is refused, the refresh fails with <code>invalid_grant</code>, and the app signs you out and tells you why.</p>
<form method="post" action="/logout"><button type="submit" id="logout">Sign out</button></form>
{{else}}
<p><a class="button" id="sign-in" href="/login">Sign in with Latchkey</a></p>
{{end}}
</main>
</body>
</html>
`))

// contentSecurityPolicy: the pages use no script and load only app.css.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

func (a *App) render(w http.ResponseWriter, status int, p page) {
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, p); err != nil {
		a.log.Error("render page", slog.Any("error", err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

const css = `body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:44rem;margin:2rem auto;padding:2rem;background:#fff;border-radius:12px;box-shadow:0 1px 3px #0002}
h1{margin-top:0}.lead{color:#555}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e4e6eb}th{width:12rem;font-weight:600}
.box{padding:.75rem 1rem;border-radius:8px;background:#eef3ff;margin:1rem 0}.box p{margin:0}
.box-error{background:#fdecec}.box-revoked{background:#fff4e0;border:1px solid #e8a33d;font-weight:600}
.button,button{display:inline-block;padding:.6rem 1.2rem;border-radius:8px;border:0;background:#3451d1;color:#fff;text-decoration:none;font:inherit;cursor:pointer}
button{background:#5b6270}
@media (prefers-color-scheme:dark){body{background:#111418;color:#e7e9ee}main{background:#1b1f26}th,td{border-color:#2c323c}.lead{color:#aab}.box{background:#1f2a44}.box-error{background:#4a1f1f}.box-revoked{background:#4a3510}}
`

func serveCSS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write([]byte(css))
}
