//go:build ignore

// A minimal login and consent app for Ory Hydra, for measuring Hydra with
// latchkey-bench (run.sh starts it): Hydra has no sign-in pages of its
// own and sends the browser to an app that accepts the login and consent
// challenges through Hydra's admin API. Its pages are plain forms that the
// load tool's form driver fills in like Latchkey's: a form with username
// and password, then one with an Allow button named decision.
//
//	go run loginapp.go -addr 127.0.0.1:3001 -admin http://127.0.0.1:4445
//
// It accepts any username whose password equals $HYDRA_BENCH_PASSWORD.
// For benchmarks on loopback only; not an example of a production app.
package main

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"flag"
	"fmt"
	"html/template"
	"log"
	"net/http"
	"net/url"
	"os"
)

var (
	admin    = flag.String("admin", "http://127.0.0.1:4445", "Hydra admin URL")
	addr     = flag.String("addr", "127.0.0.1:3001", "listen address")
	password = os.Getenv("HYDRA_BENCH_PASSWORD")
)

var pages = template.Must(template.New("").Parse(`
{{define "login"}}<!doctype html><title>Sign in</title>
<form method="post" action="/login"><input type="hidden" name="challenge" value="{{.}}">
<input name="username"><input type="password" name="password"><button>Sign in</button></form>{{end}}
{{define "consent"}}<!doctype html><title>Consent</title>
<form method="post" action="/consent"><input type="hidden" name="challenge" value="{{.}}">
<button name="decision" value="allow">Allow</button></form>{{end}}`))

// call sends body (JSON) to Hydra's admin API and decodes the answer.
func call(method, path, challengeParam, challenge string, body, out any) error {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, *admin+path+"?"+challengeParam+"="+url.QueryEscape(challenge), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("hydra %s %s: %s", method, path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

type redirect struct {
	RedirectTo string `json:"redirect_to"`
}

func main() {
	flag.Parse()
	if password == "" {
		log.Fatal("set HYDRA_BENCH_PASSWORD")
	}
	http.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		pages.ExecuteTemplate(w, "login", r.URL.Query().Get("login_challenge"))
	})
	http.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.FormValue("password")), []byte(password)) != 1 {
			http.Error(w, "wrong password", http.StatusUnauthorized)
			return
		}
		var out redirect
		err := call(http.MethodPut, "/admin/oauth2/auth/requests/login/accept", "login_challenge", r.FormValue("challenge"),
			map[string]any{"subject": r.FormValue("username")}, &out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		http.Redirect(w, r, out.RedirectTo, http.StatusFound)
	})
	http.HandleFunc("GET /consent", func(w http.ResponseWriter, r *http.Request) {
		pages.ExecuteTemplate(w, "consent", r.URL.Query().Get("consent_challenge"))
	})
	http.HandleFunc("POST /consent", func(w http.ResponseWriter, r *http.Request) {
		challenge := r.FormValue("challenge")
		var creq struct {
			Scope    []string `json:"requested_scope"`
			Audience []string `json:"requested_access_token_audience"`
		}
		if err := call(http.MethodGet, "/admin/oauth2/auth/requests/consent", "consent_challenge", challenge, nil, &creq); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		var out redirect
		err := call(http.MethodPut, "/admin/oauth2/auth/requests/consent/accept", "consent_challenge", challenge,
			map[string]any{"grant_scope": creq.Scope, "grant_access_token_audience": creq.Audience}, &out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		http.Redirect(w, r, out.RedirectTo, http.StatusFound)
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
