package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// This workplace allows load only against servers on this machine: every
// URL the tool is given or discovers must name a loopback host, and every
// connection it opens is checked again after name resolution, so neither a
// discovery document, a redirect nor a proxy setting can send traffic
// anywhere else.

// errNotLoopback explains the refusal.
var errNotLoopback = errors.New("only loopback targets are allowed (127.0.0.0/8, ::1, localhost): this tool must never send load to another machine")

// checkTarget accepts an http(s) URL whose host is localhost or a loopback
// IP literal.
func checkTarget(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: not an http(s) URL", raw)
	}
	if !loopbackHost(u.Hostname()) {
		return fmt.Errorf("%q: %w", raw, errNotLoopback)
	}
	return nil
}

func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// loopbackOnly is a net.Dialer Control function: it refuses any connection
// whose resolved address is not a loopback address.
func loopbackOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return fmt.Errorf("refusing to connect to %s: %w", address, errNotLoopback)
	}
	return nil
}

// loopbackDialer dials only loopback addresses (loopbackOnly).
func loopbackDialer() *net.Dialer {
	return &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: loopbackOnly}
}

// newTransport returns a keep-alive transport that can only reach loopback
// addresses and ignores proxy settings.
func newTransport(conns int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         loopbackDialer().DialContext,
		MaxIdleConns:        2 * conns,
		MaxIdleConnsPerHost: 2 * conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

// newClient returns the HTTP client for API calls: loopback only, no
// redirects followed.
func newClient(t http.RoundTripper, timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: t,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// metadata is the part of the OpenID Provider metadata the tool uses.
type metadata struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

// discover reads the issuer's OpenID Provider metadata (OIDC Discovery §4)
// and checks that every endpoint it will call is on loopback.
func discover(ctx context.Context, c *http.Client, issuer string) (*metadata, error) {
	u := strings.TrimRight(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("discovery: %s answered %d", u, resp.StatusCode)
	}
	var m metadata
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if strings.TrimRight(m.Issuer, "/") != strings.TrimRight(issuer, "/") {
		return nil, fmt.Errorf("discovery: issuer is %q, want %q", m.Issuer, issuer)
	}
	if m.AuthorizationEndpoint == "" || m.TokenEndpoint == "" {
		return nil, errors.New("discovery: no authorization_endpoint or token_endpoint")
	}
	for _, e := range []string{m.AuthorizationEndpoint, m.TokenEndpoint, m.IntrospectionEndpoint} {
		if e == "" {
			continue
		}
		if err := checkTarget(e); err != nil {
			return nil, fmt.Errorf("discovery: %w", err)
		}
	}
	return &m, nil
}
