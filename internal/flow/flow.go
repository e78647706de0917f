// Package flow drives Latchkey's (or any server's) sign-in and consent pages
// the way a browser without JavaScript would: it follows redirects, parses
// the HTML forms, fills in username and password, and presses Allow. Tests
// and the load tool use it to obtain authorization codes through the real
// pages.
package flow

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/net/html"
)

// Browser is a cookie-keeping HTTP client that stops at the client's
// redirect URI.
type Browser struct {
	Client *http.Client
	// RedirectPrefix: a redirect whose URL starts with it ends the flow.
	RedirectPrefix string
	// OTP, when set, answers a page asking for a one-time code (sign-in
	// second factor or enrollment); it gets the page to read it if needed.
	OTP func(p *Page) string
}

// NewBrowser returns a Browser with a fresh cookie jar. base may be nil.
func NewBrowser(base *http.Client, redirectPrefix string) *Browser {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	if base != nil {
		c.Transport = base.Transport
	}
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirectPrefix) {
			return http.ErrUseLastResponse
		}
		if len(via) > 10 {
			return errors.New("flow: too many redirects")
		}
		return nil
	}
	return &Browser{Client: c, RedirectPrefix: redirectPrefix}
}

// Form is an HTML form on a page.
type Form struct {
	Action  *url.URL
	Method  string
	Fields  url.Values
	Buttons map[string][]string // submit button name → values
	Inputs  map[string]map[string]string
}

// Page is a fetched HTML page.
type Page struct {
	URL    *url.URL
	Status int
	Body   string
	Forms  []*Form
}

// Result is where a flow ended: the client redirect URI with its query.
type Result struct {
	Redirect *url.URL
}

// Get fetches a URL; if it redirects to the client it returns a Result.
func (b *Browser) Get(u string) (*Page, *Result, error) {
	resp, err := b.Client.Get(u)
	if err != nil {
		return nil, nil, err
	}
	return b.read(resp)
}

// Submit posts a form with extra fields (overrides), pressing the submit
// button named button whose value is value ("" for none).
func (b *Browser) Submit(f *Form, fields map[string]string, button, value string) (*Page, *Result, error) {
	v := url.Values{}
	for k, vs := range f.Fields {
		v[k] = append([]string(nil), vs...)
	}
	for k, val := range fields {
		v.Set(k, val)
	}
	if button != "" {
		if !slices.Contains(f.Buttons[button], value) {
			return nil, nil, fmt.Errorf("flow: no button %s=%s", button, value)
		}
		v.Set(button, value)
	}
	resp, err := b.Client.PostForm(f.Action.String(), v)
	if err != nil {
		return nil, nil, err
	}
	return b.read(resp)
}

func (b *Browser) read(resp *http.Response) (*Page, *Result, error) {
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		loc, err := resp.Location()
		if err != nil {
			return nil, nil, err
		}
		return nil, &Result{Redirect: loc}, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, nil, err
	}
	p := &Page{URL: resp.Request.URL, Status: resp.StatusCode, Body: string(body)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		p.Forms, err = parseForms(p.URL, string(body))
	}
	return p, nil, err
}

// FormWith returns the first form having an input or button named name.
func (p *Page) FormWith(name string) *Form {
	for _, f := range p.Forms {
		if _, ok := f.Inputs[name]; ok {
			return f
		}
		if _, ok := f.Buttons[name]; ok {
			return f
		}
	}
	return nil
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func parseForms(base *url.URL, body string) ([]*Form, error) {
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	var forms []*Form
	var cur *Form
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "form":
				action, _ := attr(n, "action")
				u, err := base.Parse(action)
				if err != nil {
					u = base
				}
				method, _ := attr(n, "method")
				cur = &Form{Action: u, Method: strings.ToUpper(method), Fields: url.Values{}, Buttons: map[string][]string{}, Inputs: map[string]map[string]string{}}
				forms = append(forms, cur)
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					walk(c)
				}
				cur = nil
				return
			case "input", "button":
				if cur != nil {
					name, _ := attr(n, "name")
					typ, _ := attr(n, "type")
					val, _ := attr(n, "value")
					attrs := map[string]string{}
					for _, a := range n.Attr {
						attrs[a.Key] = a.Val
					}
					switch {
					case name == "":
					case n.Data == "button" || typ == "submit":
						cur.Buttons[name] = append(cur.Buttons[name], val)
					default:
						cur.Inputs[name] = attrs
						if typ == "hidden" || val != "" {
							cur.Fields.Set(name, val)
						}
					}
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return forms, nil
}

// Authorize runs a whole sign-in: it opens authURL, signs in with username
// and password if asked, presses Allow on the consent page if shown, and
// returns the redirect to the client.
func (b *Browser) Authorize(authURL, username, password string) (*url.URL, error) {
	page, res, err := b.Get(authURL)
	for step := 0; step < 10; step++ {
		if err != nil {
			return nil, err
		}
		if res != nil {
			return res.Redirect, nil
		}
		switch {
		case page.FormWith("password") != nil:
			page, res, err = b.Submit(page.FormWith("password"), map[string]string{"username": username, "password": password}, "", "")
		case page.FormWith("otp") != nil && b.OTP != nil:
			page, res, err = b.Submit(page.FormWith("otp"), map[string]string{"otp": b.OTP(page)}, "", "")
		case strings.Contains(page.Body, "recovery-codes"):
			// Enrollment finished: follow the Continue link.
			page, res, err = b.Get(continueLink(page))
		case page.FormWith("decision") != nil:
			page, res, err = b.Submit(page.FormWith("decision"), nil, "decision", "allow")
		default:
			return nil, fmt.Errorf("flow: unexpected page %s (status %d): %.300s", page.URL, page.Status, page.Body)
		}
	}
	return nil, errors.New("flow: too many steps")
}

// continueLink finds the href of the "Continue" link on a page.
func continueLink(p *Page) string {
	doc, err := html.Parse(strings.NewReader(p.Body))
	if err != nil {
		return p.URL.String()
	}
	var href string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "a" && n.FirstChild != nil && strings.TrimSpace(n.FirstChild.Data) == "Continue" {
			href, _ = attr(n, "href")
		}
		for c := n.FirstChild; c != nil && href == ""; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	u, err := p.URL.Parse(href)
	if err != nil {
		return p.URL.String()
	}
	return u.String()
}
