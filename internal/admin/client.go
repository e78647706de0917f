package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/operator"
)

// Client calls the admin API: the CLI's remote mode (--admin-url). Its
// methods mirror the operator functions the CLI calls locally and return
// the same views; an API error is a *Problem whose message is the server's
// detail, i.e. the operator's own message.
type Client struct {
	base  *url.URL
	token string
	// HTTP is the client used; nil means one with a 30 s timeout.
	HTTP *http.Client
}

// NewClient returns a client for the admin API at baseURL.
func NewClient(baseURL, token string) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("admin URL %q must be an absolute http(s) URL", baseURL)
	}
	if token == "" {
		return nil, errors.New("the admin API needs a token: set LATCHKEY_ADMIN_TOKEN (or LATCHKEY_ADMIN_TOKEN_FILE)")
	}
	return &Client{base: u, token: token}, nil
}

// do sends a request with an optional JSON body and decodes a JSON answer
// into out (nil: none expected).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	u := *c.base
	u.Path += path
	u.RawPath = ""
	if strings.Contains(path, "%") {
		// path holds percent-encoded segments (usernames): keep them.
		u.RawPath = c.base.EscapedPath() + path
		u.Path, _ = url.PathUnescape(u.RawPath)
	}
	u.RawQuery = q.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	if resp.StatusCode >= 400 {
		p := &Problem{Status: resp.StatusCode, Title: resp.Status}
		if json.Unmarshal(b, p) != nil || p.Status == 0 {
			p = &Problem{Status: resp.StatusCode, Title: resp.Status}
		}
		if p.Detail == "" {
			p.Detail = fmt.Sprintf("admin API: %s", resp.Status)
		}
		return p
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("admin API: unexpected answer to %s %s: %w", method, path, err)
	}
	return nil
}

func userPath(username string, rest ...string) string {
	p := "/v1/users/" + url.PathEscape(username)
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

// ListClients is `client list`.
func (c *Client) ListClients(ctx context.Context) ([]operator.ClientView, error) {
	var out ClientList
	err := c.do(ctx, http.MethodGet, "/v1/clients", nil, nil, &out)
	return out.Clients, err
}

// CreateClient is `client create`.
func (c *Client) CreateClient(ctx context.Context, s operator.ClientSpec) (operator.ClientView, error) {
	req := ClientCreate{ClientID: s.ID, Name: s.Name, ClientSecret: s.Secret, Public: s.Public, RedirectURIs: s.RedirectURIs,
		Scopes: s.Scopes, ReuseReportOnly: s.ReuseReportOnly, RequireMFA: s.RequireMFA, RequireDPoP: s.RequireDPoP, JWKS: s.JWKS,
		IDTokenAlg: s.IDTokenAlg}
	if s.RefreshIdle > 0 {
		req.RefreshIdle = s.RefreshIdle.String()
	}
	if s.RefreshAbsolute > 0 {
		req.RefreshAbsolute = s.RefreshAbsolute.String()
	}
	var out operator.ClientView
	err := c.do(ctx, http.MethodPost, "/v1/clients", nil, req, &out)
	return out, err
}

// UpdateClient is `client update`.
func (c *Client) UpdateClient(ctx context.Context, id string, u operator.ClientUpdate) (operator.ClientView, error) {
	req := ClientUpdate{Name: u.Name, ReuseReportOnly: u.ReuseReportOnly, RequireMFA: u.RequireMFA, RequireDPoP: u.RequireDPoP, JWKS: u.JWKS,
		IDTokenAlg: u.IDTokenAlg}
	if u.RedirectURIs != nil {
		req.RedirectURIs = &u.RedirectURIs
	}
	if u.Scopes != nil {
		req.Scopes = &u.Scopes
	}
	if u.RefreshIdle != nil {
		s := u.RefreshIdle.String()
		req.RefreshIdle = &s
	}
	if u.RefreshAbsolute != nil {
		s := u.RefreshAbsolute.String()
		req.RefreshAbsolute = &s
	}
	var out operator.ClientView
	err := c.do(ctx, http.MethodPatch, "/v1/clients/"+url.PathEscape(id), nil, req, &out)
	return out, err
}

// DeleteClient is `client delete`.
func (c *Client) DeleteClient(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/clients/"+url.PathEscape(id), nil, nil, nil)
}

// ListUsers is `user list`.
func (c *Client) ListUsers(ctx context.Context) ([]operator.UserView, error) {
	var out UserList
	err := c.do(ctx, http.MethodGet, "/v1/users", nil, nil, &out)
	return out.Users, err
}

// CreateUser is `user create` (without a second factor).
func (c *Client) CreateUser(ctx context.Context, s operator.UserSpec) (operator.UserView, error) {
	var out operator.UserView
	err := c.do(ctx, http.MethodPost, "/v1/users", nil, UserCreate{Username: s.Username, Password: s.Password, Name: s.Name, Email: s.Email}, &out)
	return out, err
}

// SetDisabled is `user disable` / `user enable`.
func (c *Client) SetDisabled(ctx context.Context, username string, disabled bool) error {
	action := "enable"
	if disabled {
		action = "disable"
	}
	return c.do(ctx, http.MethodPost, userPath(username, action), nil, nil, &operator.UserView{})
}

// SetPassword is `user set-password`; the server decides, with its
// revoke_on_password_change, whether families end.
func (c *Client) SetPassword(ctx context.Context, username, password string, keepSessions bool) (int, error) {
	var out Ended
	err := c.do(ctx, http.MethodPost, userPath(username, "password"), nil, PasswordChange{Password: password, KeepSessions: keepSessions}, &out)
	return out.FamiliesEnded, err
}

// RevokeSessions is `user revoke-sessions`.
func (c *Client) RevokeSessions(ctx context.Context, username string) (int, error) {
	var out Ended
	err := c.do(ctx, http.MethodPost, userPath(username, "revoke-sessions"), nil, nil, &out)
	return out.FamiliesEnded, err
}

// Grants is `grant list`.
func (c *Client) Grants(ctx context.Context, username string) ([]operator.Grant, error) {
	var out GrantList
	err := c.do(ctx, http.MethodGet, userPath(username, "grants"), nil, nil, &out)
	return out.Grants, err
}

// RevokeGrant is `grant revoke`.
func (c *Client) RevokeGrant(ctx context.Context, username, clientID string) error {
	return c.do(ctx, http.MethodDelete, userPath(username, "grants", url.PathEscape(clientID)), nil, nil, nil)
}

// RevokeTokens is `token revoke`: every family of the user (optionally only
// for one client).
func (c *Client) RevokeTokens(ctx context.Context, username, clientID string) (int, error) {
	var out Ended
	err := c.do(ctx, http.MethodPost, "/v1/families/revoke", nil, FamiliesRevoke{Username: username, ClientID: clientID}, &out)
	return out.FamiliesEnded, err
}

// Families lists families with their state.
func (c *Client) Families(ctx context.Context, q operator.FamilyQuery) ([]operator.FamilyView, error) {
	v := url.Values{}
	if q.Username != "" {
		v.Set("username", q.Username)
	}
	if q.ClientID != "" {
		v.Set("client_id", q.ClientID)
	}
	if q.LiveOnly {
		v.Set("live", "true")
	}
	var out FamilyList
	err := c.do(ctx, http.MethodGet, "/v1/families", v, nil, &out)
	return out.Families, err
}

// Audit is `audit list`.
func (c *Client) Audit(ctx context.Context, q operator.AuditQuery) ([]operator.AuditView, error) {
	v := url.Values{}
	for k, s := range map[string]string{"username": q.Username, "client_id": q.ClientID, "family_id": q.FamilyID} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out AuditList
	err := c.do(ctx, http.MethodGet, "/v1/audit", v, nil, &out)
	return out.Events, err
}

// Keys lists the signing keys.
func (c *Client) Keys(ctx context.Context) ([]keys.KeyInfo, error) {
	var out KeyList
	err := c.do(ctx, http.MethodGet, "/v1/keys", nil, nil, &out)
	return out.Keys, err
}

// RotateKeys rotates the signing keys.
func (c *Client) RotateKeys(ctx context.Context, force bool) (*keys.RotateResult, error) {
	var out keys.RotateResult
	err := c.do(ctx, http.MethodPost, "/v1/keys/rotate", nil, KeysRotate{Force: force}, &out)
	return &out, err
}
