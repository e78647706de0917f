package flow

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

const consentPage = `<!doctype html>
<html><head><title>Allow access</title></head><body>
<form method="post" action="/consent" class="form">
<input type="hidden" name="request" value="req-123">
<input type="hidden" name="csrf_token" value="tok&amp;en">
<div class="actions">
<button type="submit" name="decision" value="deny" class="btn">Deny</button>
<button type="submit" name="decision" value="allow" class="btn">Allow</button>
</div>
</form>
<form method="post" action="/logout"><input type="hidden" name="csrf_token" value="other"><button type="submit">Sign out</button></form>
</body></html>`

const loginPage = `<!doctype html><html><body>
<form method="post" class="form">
<input type="hidden" name="request" value="r1">
<input type="hidden" name="empty" value="">
<input id="username" name="username" type="text" autocomplete="username" value="alice">
<input id="password" name="password" type="password" required>
<input name="remember" type="checkbox" value="yes">
<input type="text" value="no name">
<input type="submit" name="go" value="Sign in">
<button type="submit">Sign in (unnamed)</button>
</form>
<input type="hidden" name="outside" value="not in a form">
</body></html>`

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestParseFormsConsent(t *testing.T) {
	base := mustURL(t, "https://id.example.com/consent?request=req-123")
	forms, err := parseForms(base, consentPage)
	if err != nil {
		t.Fatal(err)
	}
	if len(forms) != 2 {
		t.Fatalf("got %d forms, want 2", len(forms))
	}
	f := forms[0]
	if f.Action.String() != "https://id.example.com/consent" || f.Method != "POST" {
		t.Errorf("action %s method %s", f.Action, f.Method)
	}
	if f.Fields.Get("request") != "req-123" || f.Fields.Get("csrf_token") != "tok&en" || len(f.Fields) != 2 {
		t.Errorf("fields %v", f.Fields)
	}
	if got := f.Buttons["decision"]; !slices.Equal(got, []string{"deny", "allow"}) {
		t.Errorf("buttons %v, want both decision values in order", got)
	}
	if f.Fields.Has("decision") {
		t.Error("a button value was put into the submitted fields")
	}
	if forms[1].Action.Path != "/logout" || forms[1].Fields.Get("csrf_token") != "other" || len(forms[1].Buttons) != 0 {
		t.Errorf("second form %+v", forms[1])
	}
	p := &Page{Forms: forms}
	if p.FormWith("decision") != forms[0] || p.FormWith("request") != forms[0] || p.FormWith("password") != nil {
		t.Error("FormWith picks the wrong form")
	}
}

func TestParseFormsLogin(t *testing.T) {
	base := mustURL(t, "https://id.example.com/login?request=r1")
	forms, err := parseForms(base, loginPage)
	if err != nil {
		t.Fatal(err)
	}
	if len(forms) != 1 {
		t.Fatalf("got %d forms", len(forms))
	}
	f := forms[0]
	// No action attribute: the form posts to the page itself.
	if f.Action.String() != base.String() {
		t.Errorf("action %s, want %s", f.Action, base)
	}
	want := url.Values{"request": {"r1"}, "empty": {""}, "username": {"alice"}, "remember": {"yes"}}
	if len(f.Fields) != len(want) {
		t.Errorf("fields %v, want %v", f.Fields, want)
	}
	for k, v := range want {
		if f.Fields.Get(k) != v[0] || !f.Fields.Has(k) {
			t.Errorf("field %s = %q, want %q", k, f.Fields.Get(k), v[0])
		}
	}
	if f.Fields.Has("password") || f.Fields.Has("outside") {
		t.Errorf("unexpected fields %v", f.Fields)
	}
	if in := f.Inputs["password"]; in["type"] != "password" || in["id"] != "password" {
		t.Errorf("password input attributes %v", in)
	}
	if _, ok := f.Inputs["required"]; ok {
		t.Error("attribute parsed as an input")
	}
	if got := f.Buttons["go"]; !slices.Equal(got, []string{"Sign in"}) || len(f.Buttons) != 1 {
		t.Errorf("buttons %v", f.Buttons)
	}
}

func TestParseFormsActions(t *testing.T) {
	base := mustURL(t, "https://id.example.com/a/b?x=1")
	tests := []struct{ action, want string }{
		{`action="/consent"`, "https://id.example.com/consent"},
		{`action="next"`, "https://id.example.com/a/next"},
		{`action="?request=2"`, "https://id.example.com/a/b?request=2"},
		{`action="https://other.example/x"`, "https://other.example/x"},
		{`action="http://[::1"`, "https://id.example.com/a/b?x=1"}, // unparsable: fall back to the page
		{``, "https://id.example.com/a/b?x=1"},
	}
	for _, tt := range tests {
		forms, err := parseForms(base, `<form method="GET" `+tt.action+`><input name="a" type="hidden" value="1"></form>`)
		if err != nil || len(forms) != 1 {
			t.Fatalf("%s: %v %d", tt.action, err, len(forms))
		}
		if got := forms[0].Action.String(); got != tt.want {
			t.Errorf("%s: action %s, want %s", tt.action, got, tt.want)
		}
		if forms[0].Method != "GET" {
			t.Errorf("method %q", forms[0].Method)
		}
	}
}

func TestParseFormsNoForms(t *testing.T) {
	for _, body := range []string{"", "plain text", "<p>no form</p><input name=x value=y>", "<form"} {
		forms, err := parseForms(mustURL(t, "http://x/"), body)
		if err != nil || len(forms) != 0 {
			t.Errorf("%q: %d forms, %v", body, len(forms), err)
		}
	}
}

func TestSubmitAndAuthorize(t *testing.T) {
	// A tiny fake server: /authorize → login → consent → redirect to the client.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<form method="post"><input type="hidden" name="csrf" value="c1"><input name="username"><input name="password" type="password"><button type="submit">Go</button></form>`)
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if r.PostFormValue("username") != "alice" || r.PostFormValue("password") != "pw" || r.PostFormValue("csrf") != "c1" {
			http.Error(w, "bad login "+r.PostForm.Encode(), 400)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "s", Value: "1", Path: "/"})
		http.Redirect(w, r, "/consent", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /consent", func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie("s"); err != nil || c.Value != "1" {
			http.Error(w, "no session", 401)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, consentPage)
	})
	mux.HandleFunc("POST /consent", func(w http.ResponseWriter, r *http.Request) {
		if r.PostFormValue("decision") != "allow" || r.PostFormValue("request") != "req-123" {
			http.Error(w, "bad consent", 400)
			return
		}
		http.Redirect(w, r, "http://client.test/cb?code=abc&state=s", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	b := NewBrowser(nil, "http://client.test/")
	u, err := b.Authorize(srv.URL+"/authorize", "alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if u.Host != "client.test" || u.Query().Get("code") != "abc" {
		t.Errorf("redirect %s", u)
	}

	// Pressing a button that is not on the form is an error, not a request.
	page, _, err := b.Get(srv.URL + "/consent")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Submit(page.FormWith("decision"), nil, "decision", "maybe"); err == nil || !strings.Contains(err.Error(), "no button decision=maybe") {
		t.Errorf("unknown button: %v", err)
	}

	// A wrong password ends on an unexpected page, reported with its status.
	_, err = NewBrowser(nil, "http://client.test/").Authorize(srv.URL+"/authorize", "alice", "wrong")
	if err == nil || !strings.Contains(err.Error(), "status 400") {
		t.Errorf("wrong password: %v", err)
	}
}

func FuzzParseForms(f *testing.F) {
	for _, s := range []string{consentPage, loginPage, "", "<form action=x><input name=a value=b></form>",
		"<form><form><input name=a></form></form>", "<form action='http://[::1'><button name=b value=c>", "<input name=x>",
		"<table><form><tr><td><input name=a type=hidden value=1></td></tr></form></table>"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://id.example.com/login?request=1")
	f.Fuzz(func(t *testing.T, body string) {
		forms, err := parseForms(base, body)
		if err != nil {
			return
		}
		for _, fm := range forms {
			if fm.Action == nil || fm.Fields == nil || fm.Buttons == nil || fm.Inputs == nil {
				t.Fatalf("form with nil parts: %+v", fm)
			}
			if fm.Method != strings.ToUpper(fm.Method) {
				t.Fatalf("method %q not upper-case", fm.Method)
			}
			for k, vs := range fm.Fields {
				if k == "" || len(vs) != 1 {
					t.Fatalf("field %q = %q", k, vs)
				}
				if _, ok := fm.Inputs[k]; !ok {
					t.Fatalf("field %q without an input", k)
				}
			}
			for k := range fm.Buttons {
				if k == "" {
					t.Fatal("unnamed button recorded")
				}
			}
		}
	})
}
