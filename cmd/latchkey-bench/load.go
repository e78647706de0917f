package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/oauth2"
)

// credential is one refresh-token family held by one worker: the newest
// refresh token and the access token issued with it.
type credential struct {
	refresh, access string
	// dead: the server refused the refresh token with invalid_grant, so the
	// family cannot be used again.
	dead bool
}

// tokenResponse is the part of a token response (RFC 6749 §5.1) the tool
// checks, and of an error response (§5.2).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
	Active       *bool  `json:"active"` // introspection
}

// result is what one worker measured.
type result struct {
	lat, iter []time.Duration // grant latency; whole iteration (code mode)
	at        []time.Duration // with -dump: each grant's start, since runner.start
	ok        int64
	errs      map[string]int64
	examples  map[string]string
	lastDone  time.Time
	// outOfTokens: every family of this worker was refused, so it stopped.
	outOfTokens bool
}

func (r *result) fail(kind, example string) {
	r.errs[kind]++
	if _, ok := r.examples[kind]; !ok && example != "" {
		if len(example) > 200 {
			example = example[:200]
		}
		r.examples[kind] = example
	}
}

// runner runs the load phase.
type runner struct {
	o          *options
	m          *metadata
	hc         *http.Client
	start, end time.Time    // the measured window; before start is warm-up
	budget     atomic.Int64 // requests left when o.maxRequests > 0
	okCount    atomic.Int64 // successful grants in the measured window
	wantID     bool         // openid requested: every grant must carry an ID token
}

func (r *runner) clientAuth(form url.Values, req *http.Request) {
	switch {
	case r.o.clientSecret == "":
		form.Set("client_id", r.o.clientID)
	case r.o.authMethod == "post":
		form.Set("client_id", r.o.clientID)
		form.Set("client_secret", r.o.clientSecret)
	default:
		// RFC 6749 §2.3.1: form-urlencode before Basic.
		req.SetBasicAuth(url.QueryEscape(r.o.clientID), url.QueryEscape(r.o.clientSecret))
	}
}

// post sends form to endpoint with client authentication and decodes the
// JSON answer. kind is "" on a 200 with a JSON body, else the error kind.
func (r *runner) post(ctx context.Context, d doer, endpoint string, form url.Values) (tr tokenResponse, kind, example string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, nil)
	if err != nil {
		return tr, "request: " + err.Error(), ""
	}
	r.clientAuth(form, req)
	body := form.Encode()
	req.Body = io.NopCloser(strings.NewReader(body))
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := d.Do(req)
	if err != nil {
		return tr, transportKind(err), err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return tr, transportKind(err), err.Error()
	}
	jerr := json.Unmarshal(b, &tr)
	if resp.StatusCode != http.StatusOK {
		code := tr.Error
		if jerr != nil || code == "" {
			code = "(no OAuth error code)"
		}
		return tr, fmt.Sprintf("HTTP %d %s", resp.StatusCode, code), tr.Description
	}
	if jerr != nil {
		return tr, "HTTP 200 with a body that is not JSON", string(b)
	}
	return tr, "", ""
}

// transportKind names a failure below HTTP.
func transportKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "transport: timeout"
	case errors.Is(err, context.Canceled):
		return "transport: canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "transport: connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "transport: connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "transport: unexpected EOF"
	case errors.Is(err, errNotLoopback):
		return "transport: refused (not loopback)"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "transport: timeout"
	}
	return "transport: other"
}

// refresh rotates c once (RFC 6749 §6) and keeps the newest token.
func (r *runner) refresh(ctx context.Context, d doer, c *credential) (kind, example string) {
	tr, kind, example := r.post(ctx, d, r.m.TokenEndpoint, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {c.refresh}})
	if kind != "" {
		if tr.Error == "invalid_grant" {
			c.dead = true
		}
		return kind, example
	}
	if tr.AccessToken == "" {
		return "HTTP 200 without access_token", ""
	}
	c.access = tr.AccessToken
	switch {
	case tr.RefreshToken == "" || tr.RefreshToken == c.refresh:
		return "HTTP 200 without a new refresh token (not rotated)", ""
	case r.wantID && tr.IDToken == "":
		c.refresh = tr.RefreshToken
		return "HTTP 200 without id_token", ""
	}
	c.refresh = tr.RefreshToken
	return "", ""
}

// introspect asks about c's access (or refresh) token (RFC 7662).
func (r *runner) introspect(ctx context.Context, d doer, c *credential) (kind, example string) {
	tok, hint := c.access, "access_token"
	if r.o.introspectToken == "refresh" {
		tok, hint = c.refresh, "refresh_token"
	}
	tr, kind, example := r.post(ctx, d, r.m.IntrospectionEndpoint, url.Values{"token": {tok}, "token_type_hint": {hint}})
	switch {
	case kind != "":
		return kind, example
	case tr.Active == nil:
		return "HTTP 200 without active", ""
	case !*tr.Active:
		return "HTTP 200 active=false", ""
	}
	return "", ""
}

// codeFlow runs one authorization (front channel, with the worker's
// signed-in browser) and one code exchange. It returns the exchange's
// latency as the grant's.
func (r *runner) codeFlow(ctx context.Context, s *session) (grant time.Duration, kind, example string) {
	a, err := s.authorize()
	if err != nil {
		return 0, "authorize: " + shortFlowError(err), err.Error()
	}
	t := time.Now()
	tok, err := s.exchange(ctx, a)
	grant = time.Since(t)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil {
			code := re.ErrorCode
			if code == "" {
				code = "(no OAuth error code)"
			}
			return grant, fmt.Sprintf("HTTP %d %s", re.Response.StatusCode, code), re.ErrorDescription
		}
		return grant, transportKind(err), err.Error()
	}
	if tok.AccessToken == "" {
		return grant, "HTTP 200 without access_token", ""
	}
	if id, _ := tok.Extra("id_token").(string); r.wantID && id == "" {
		return grant, "HTTP 200 without id_token", ""
	}
	return grant, "", ""
}

func shortFlowError(err error) string {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) {
		return transportKind(err)
	}
	if strings.Contains(err.Error(), "unexpected page") {
		return "unexpected page"
	}
	return "failed"
}

// workerDoer returns what one worker sends its refresh or introspection
// requests with: a connection of its own (connClient), or, for an https
// endpoint, the shared net/http client (which the code flow always uses:
// it needs the browser's cookies).
func (r *runner) workerDoer() doer {
	endpoint := r.m.TokenEndpoint
	switch r.o.mode {
	case "introspect":
		endpoint = r.m.IntrospectionEndpoint
	case "code":
		return r.hc
	}
	if u, err := url.Parse(endpoint); err == nil && u.Scheme == "http" {
		return newConnClient(r.o.timeout)
	}
	return r.hc
}

// work is one worker: it loops until the window ends, using its own
// credentials (refresh, introspect) or its own signed-in browser (code).
func (r *runner) work(ctx context.Context, creds []*credential, s *session) *result {
	res := &result{errs: map[string]int64{}, examples: map[string]string{}}
	d := r.workerDoer()
	if cc, ok := d.(*connClient); ok {
		defer cc.Close()
	}
	next := 0
	for {
		now := time.Now()
		if !now.Before(r.end) || ctx.Err() != nil {
			break
		}
		if r.o.maxRequests > 0 && r.budget.Add(-1) < 0 {
			break
		}
		var (
			c       *credential
			lat     time.Duration
			kind, e string
		)
		if r.o.mode != "code" {
			for i := 0; i < len(creds) && c == nil; i++ {
				if cand := creds[(next+i)%len(creds)]; !cand.dead {
					c = cand
				}
			}
			next++
			if c == nil {
				res.outOfTokens = true
				break
			}
		}
		start := time.Now()
		switch r.o.mode {
		case "refresh":
			kind, e = r.refresh(ctx, d, c)
			lat = time.Since(start)
		case "introspect":
			kind, e = r.introspect(ctx, d, c)
			lat = time.Since(start)
		case "code":
			lat, kind, e = r.codeFlow(ctx, s)
		}
		done := time.Now()
		if start.Before(r.start) {
			continue // warm-up
		}
		res.lastDone = done
		if kind != "" {
			res.fail(kind, e)
			continue
		}
		res.ok++
		r.okCount.Add(1)
		res.lat = append(res.lat, lat)
		if r.o.dump != "" {
			res.at = append(res.at, start.Sub(r.start))
		}
		if r.o.mode == "code" {
			res.iter = append(res.iter, done.Sub(start))
		}
	}
	return res
}

// sample records, every every during the measured window, the grants per
// second, the server's CPU cores and its memory (a long run's throughput
// and memory should stay flat).
func (r *runner) sample(ctx context.Context, every time.Duration, srvStart cpuSnapshot) []interval {
	var out []interval
	t := time.NewTicker(every)
	defer t.Stop()
	lastOK, lastAt, lastSrv := r.okCount.Load(), time.Now(), srvStart
	for {
		select {
		case <-ctx.Done():
			return out
		case now := <-t.C:
			if now.After(r.end.Add(every / 2)) {
				return out
			}
			ok, srv := r.okCount.Load(), snapshot(r.o.pids)
			wall := now.Sub(lastAt).Seconds()
			iv := interval{At: round(now.Sub(r.start).Seconds(), 1), PerSecond: round(float64(ok-lastOK)/wall, 1)}
			if len(r.o.pids) > 0 {
				iv.ServerCores = round(lastSrv.since(srv).Seconds()/wall, 2)
				rss, _ := memOf(r.o.pids)
				iv.ServerRSSMiB = round(float64(rss)/(1<<20), 1)
			}
			out = append(out, iv)
			lastOK, lastAt, lastSrv = ok, now, srv
			if !now.Before(r.end) {
				return out
			}
		}
	}
}
