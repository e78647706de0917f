package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/oauth2"

	"github.com/latchkey-dev/latchkey/internal/flow"
)

// session signs in through the server's real pages (internal/flow) and
// exchanges codes with golang.org/x/oauth2, always with PKCE (S256). Its
// browser keeps the sign-in cookie, so after the first sign-in each new
// authorization goes straight back to the client with a code, as it would
// for a user who is already signed in and has consented.
type session struct {
	o       *options
	oauth   *oauth2.Config
	browser *flow.Browser
	hc      *http.Client
}

func newSession(o *options, m *metadata, t http.RoundTripper) *session {
	style := oauth2.AuthStyleInHeader
	if o.authMethod == "post" || o.clientSecret == "" {
		style = oauth2.AuthStyleInParams
	}
	hc := newClient(t, o.timeout)
	return &session{
		o: o,
		oauth: &oauth2.Config{
			ClientID: o.clientID, ClientSecret: o.clientSecret, RedirectURL: o.redirectURI,
			Scopes:   strings.Fields(o.scope),
			Endpoint: oauth2.Endpoint{AuthURL: m.AuthorizationEndpoint, TokenURL: m.TokenEndpoint, AuthStyle: style},
		},
		browser: flow.NewBrowser(&http.Client{Transport: t, Timeout: o.timeout}, o.redirectURI),
		hc:      hc,
	}
}

// authorization is an authorization code and the PKCE verifier it needs.
type authorization struct {
	code, verifier string
}

// authorize runs the front channel: /authorize, sign-in and consent pages
// when shown, and the redirect back with a code.
func (s *session) authorize() (*authorization, error) {
	verifier := oauth2.GenerateVerifier()
	state, nonce := randomString(), randomString()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", nonce)}
	if s.o.prompt != "" {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", s.o.prompt))
	}
	cb, err := s.browser.Authorize(s.oauth.AuthCodeURL(state, opts...), s.o.username, s.o.password)
	if err != nil {
		return nil, fmt.Errorf("sign-in: %w", err)
	}
	q := cb.Query()
	if e := q.Get("error"); e != "" {
		return nil, fmt.Errorf("sign-in: the server answered %s: %s", e, q.Get("error_description"))
	}
	if q.Get("state") != state {
		return nil, errors.New("sign-in: state mismatch in the redirect")
	}
	if q.Get("code") == "" {
		return nil, errors.New("sign-in: no code in the redirect")
	}
	return &authorization{code: q.Get("code"), verifier: verifier}, nil
}

// exchange redeems a code at the token endpoint.
func (s *session) exchange(ctx context.Context, a *authorization) (*oauth2.Token, error) {
	return s.oauth.Exchange(context.WithValue(ctx, oauth2.HTTPClient, s.hc), a.code, oauth2.VerifierOption(a.verifier))
}

// login runs a whole code flow and returns the tokens.
func (s *session) login(ctx context.Context) (*oauth2.Token, error) {
	a, err := s.authorize()
	if err != nil {
		return nil, err
	}
	tok, err := s.exchange(ctx, a)
	if err != nil {
		return nil, fmt.Errorf("code exchange: %w", err)
	}
	return tok, nil
}

// acquire obtains n refresh tokens (each its own family) through the real
// pages, with one signed-in browser.
func acquire(ctx context.Context, s *session, n int) ([]*credential, error) {
	out := make([]*credential, 0, n)
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		tok, err := s.login(ctx)
		if err != nil {
			return nil, fmt.Errorf("token %d of %d: %w", i+1, n, err)
		}
		if tok.RefreshToken == "" {
			return nil, fmt.Errorf("token %d of %d: no refresh token (does the client allow the refresh_token grant and the offline_access scope? some servers also need -prompt consent)", i+1, n)
		}
		out = append(out, &credential{refresh: tok.RefreshToken, access: tok.AccessToken})
	}
	return out, nil
}

func randomString() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
