package server_test

// Several stateless instances behind one database (issue 5). A cluster is
// two servers, each with its own pool on one PostgreSQL schema (as two
// processes would have), the same master key, the same issuer (the first
// instance's URL, as behind a load balancer) and the same clock; requests
// go to each instance's own address.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/flow"
	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/server"
	"github.com/latchkey-dev/latchkey/internal/store/sqlstore"
	"github.com/latchkey-dev/latchkey/internal/testdb"
	"github.com/latchkey-dev/latchkey/internal/testserver"
)

type cluster struct {
	A, B   *testserver.Server
	Issuer string
	Clock  *testserver.Clock
	Master []byte
}

// openHandle opens an independent store (its own pool) on dsn, closed when
// the test ends.
func openHandle(t *testing.T, dsn string) *sqlstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	dsn := testdb.PostgresDSN(t)
	c := &cluster{Clock: &testserver.Clock{}, Master: make([]byte, 32)}
	_, _ = rand.Read(c.Master)
	common := []testserver.Option{testserver.WithMasterKey(c.Master), testserver.WithClock(c.Clock)}
	c.A = testserver.StartOn(t, openHandle(t, dsn), common...)
	c.Issuer = c.A.URL
	c.B = testserver.StartOn(t, openHandle(t, dsn), slices.Concat(common, []testserver.Option{
		testserver.WithoutSeed(),
		testserver.WithConfig(func(cfg *config.Config) { cfg.Issuer = c.Issuer }),
	})...)
	return c
}

func (c *cluster) both() []*testserver.Server { return []*testserver.Server{c.A, c.B} }

// remember registers secrets with both instances' log checks.
func (c *cluster) remember(s ...string) {
	c.A.Remember(s...)
	c.B.Remember(s...)
}

// verifyIDAt verifies an ID token with go-oidc against the JWKS served by
// one instance.
func (c *cluster) verifyIDAt(t *testing.T, at *testserver.Server, clientID, raw string) *oidc.IDToken {
	t.Helper()
	ctx := context.Background()
	// Without discovery go-oidc accepts only RS256 unless told: an RP must
	// accept what discovery lists (id_token_signing_alg_values_supported).
	v := oidc.NewVerifier(c.Issuer, oidc.NewRemoteKeySet(ctx, at.URL+"/jwks"), &oidc.Config{ClientID: clientID, Now: c.Clock.Now,
		SupportedSigningAlgs: c.A.Config.KeyAlgorithms()})
	idt, err := v.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("ID token against %s's JWKS: %v", at.URL, err)
	}
	return idt
}

// recorder is an http.RoundTripper that notes the hosts and paths visited.
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.seen = append(r.seen, req.URL.Host+req.URL.Path)
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (r *recorder) visited(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.seen, s)
}

func host(ts *testserver.Server) string { return strings.TrimPrefix(ts.URL, "http://") }

var webScopes = []string{"openid", "profile", "offline_access"}

// Sign in through A's pages, exchange the code at B, refresh alternately at
// A and B: one chain, and every ID token verifies against either
// instance's JWKS.
func TestClusterSignInExchangeRefresh(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	cfgA := c.A.OAuth2Config(testserver.WebClient, testserver.WebSecret, webScopes...)
	cfgB := c.B.OAuth2Config(testserver.WebClient, testserver.WebSecret, webScopes...)

	rec := &recorder{}
	b := flow.NewBrowser(&http.Client{Transport: rec}, testserver.Redirect)
	verifier := oauth2.GenerateVerifier()
	cb := c.A.SignIn(b, cfgA.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", "n-cluster")),
		testserver.Alice, testserver.AlicePW)
	for _, page := range []string{"/authorize", "/login", "/consent"} {
		if !rec.visited(host(c.A) + page) {
			t.Errorf("the sign-in did not go through A's %s page: %v", page, rec.seen)
		}
	}
	if cb.Query().Get("iss") != c.Issuer || cb.Query().Get("code") == "" {
		t.Fatalf("redirect %s", cb)
	}
	c.remember(cb.Query().Get("code"))
	tok, err := cfgB.Exchange(ctx, cb.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code from A exchanged at B: %v", err)
	}
	c.A.RememberToken(tok)
	c.B.RememberToken(tok)
	raw, _ := tok.Extra("id_token").(string)
	var sub string
	var authTime time.Time
	for _, ts := range c.both() {
		idt := c.verifyIDAt(t, ts, testserver.WebClient, raw)
		if idt.Nonce != "n-cluster" {
			t.Errorf("nonce %q", idt.Nonce)
		}
		sub = idt.Subject
		var cl struct {
			AuthTime int64 `json:"auth_time"`
		}
		_ = idt.Claims(&cl)
		authTime = time.Unix(cl.AuthTime, 0)
	}
	rt := tok.RefreshToken
	const rounds = 6
	for i := range rounds {
		ts, other := c.both()[i%2], c.both()[(i+1)%2]
		r := mustRefresh(t, ts, rt)
		c.remember(r.Str("refresh_token"), r.Str("access_token"), r.Str("id_token"))
		for _, v := range c.both() {
			idt := c.verifyIDAt(t, v, testserver.WebClient, r.Str("id_token"))
			var cl struct {
				AuthTime int64 `json:"auth_time"`
			}
			_ = idt.Claims(&cl)
			if idt.Subject != sub || idt.Issuer != c.Issuer || cl.AuthTime != authTime.Unix() {
				t.Errorf("round %d: refreshed ID token sub %s iss %s auth_time %d", i, idt.Subject, idt.Issuer, cl.AuthTime)
			}
		}
		// The other instance sees the rotation at once.
		if active(introspect(other, rt)) {
			t.Errorf("round %d: %s still thinks the rotated refresh token is active", i, other.URL)
		}
		if !active(introspect(other, r.Str("refresh_token"))) || !active(introspect(other, r.Str("access_token"))) {
			t.Errorf("round %d: %s does not know the new tokens", i, other.URL)
		}
		if u := userinfo(other, r.Str("access_token")); u.Status != 200 || u.Str("sub") != sub {
			t.Errorf("round %d: userinfo at %s: %d %v", i, other.URL, u.Status, u.Body)
		}
		rt = r.Str("refresh_token")
	}
	f := familyOf(t, c.B, rt)
	if f.Generation != 1+rounds || !f.RevokedAt.IsZero() {
		t.Fatalf("family after %d alternating refreshes: generation %d, revoked %q", rounds, f.Generation, f.RevokeReason)
	}
	// The code redeemed at B is used up for A too: replaying it there is
	// refused and ends what it produced (RFC 6749 §4.1.2), at B as well.
	if _, err := cfgA.Exchange(ctx, cb.Query().Get("code"), oauth2.VerifierOption(verifier)); err == nil {
		t.Error("the code was accepted twice (at B, then at A)")
	}
	wantReason(t, refreshWeb(c.B, rt), oauth.ReasonCodeReplayed)
}

func userinfo(ts *testserver.Server, at string) testserver.Response {
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+at)
	return ts.Do(req)
}

// concurrentRefresh sends n refreshes of one token at once, spread over
// servers, and checks the invariants: every answer is 200 with the same
// successor, and the family advanced by exactly one generation. It returns
// the successor.
func concurrentRefresh(t *testing.T, servers []*testserver.Server, rt string, n int) string {
	t.Helper()
	before := familyOf(t, servers[0], rt)
	results := make([]testserver.Response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			results[i] = refreshWeb(servers[i%len(servers)], rt)
		})
	}
	close(start)
	wg.Wait()
	successor := results[0].Str("refresh_token")
	for i, r := range results {
		if r.Status != 200 {
			t.Fatalf("request %d (to %s): %d %v", i, servers[i%len(servers)].URL, r.Status, r.Body)
		}
		if r.Str("refresh_token") != successor {
			t.Fatalf("request %d got a different successor: the family forked", i)
		}
	}
	for _, ts := range servers {
		ts.Remember(successor)
	}
	f, err := servers[0].Store.GetFamily(context.Background(), before.ID)
	if err != nil {
		t.Fatal(err)
	}
	if f.Generation != before.Generation+1 || !f.RevokedAt.IsZero() {
		t.Fatalf("after %d concurrent refreshes: generation %d → %d, revoked %q", n, before.Generation, f.Generation, f.RevokeReason)
	}
	return successor
}

// 40 concurrent refreshes of one token, half at A and half at B: one
// winner, one successor, one generation. Then the predecessor, replayed at
// B after the grace window, is reuse, and the whole family is dead as seen
// from A.
func TestClusterConcurrentRefresh(t *testing.T) {
	c := startCluster(t)
	tok := webLogin(t, c.A, testserver.Alice, testserver.AlicePW)
	c.B.RememberToken(tok)
	successor := concurrentRefresh(t, c.both(), tok.RefreshToken, 40)
	c.remember(successor)

	c.Clock.Advance(c.A.Config.RefreshGrace.D() + time.Second)
	wantReason(t, refreshWeb(c.B, tok.RefreshToken), oauth.ReasonReused)
	wantReason(t, refreshWeb(c.A, successor), oauth.ReasonReused)
	if active(introspect(c.A, successor)) {
		t.Error("A still thinks the successor of a reused family is active")
	}
	f := familyOf(t, c.A, successor)
	if f.RevokeReason != oauth.ReasonReused {
		t.Errorf("family revoke reason %q", f.RevokeReason)
	}
}

// The single-instance rotation invariants hold on both engines.
func TestRotationInvariantsOnBothEngines(t *testing.T) {
	engines := []struct {
		name string
		open func(testing.TB) *sqlstore.Store
	}{{"sqlite", testdb.SQLite}, {"postgres", testdb.Postgres}}
	scenarios := []struct {
		name string
		run  func(t *testing.T, ts *testserver.Server)
	}{
		{"concurrent refresh of one token", func(t *testing.T, ts *testserver.Server) {
			tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
			successor := concurrentRefresh(t, []*testserver.Server{ts}, tok.RefreshToken, 40)
			next := mustRefresh(t, ts, successor) // closes the window for the predecessor
			wantReason(t, refreshWeb(ts, tok.RefreshToken), oauth.ReasonReused)
			wantReason(t, refreshWeb(ts, next.Str("refresh_token")), oauth.ReasonReused)
		}},
		{"grace-window retry, then reuse", func(t *testing.T, ts *testserver.Server) {
			tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
			r1 := mustRefresh(t, ts, tok.RefreshToken)
			ts.Clock.Advance(2 * time.Second)
			if retry := mustRefresh(t, ts, tok.RefreshToken); retry.Str("refresh_token") != r1.Str("refresh_token") {
				t.Fatal("grace-window retry returned a different successor")
			}
			ts.Clock.Advance(ts.Config.RefreshGrace.D())
			wantReason(t, refreshWeb(ts, tok.RefreshToken), oauth.ReasonReused)
			wantReason(t, refreshWeb(ts, r1.Str("refresh_token")), oauth.ReasonReused)
		}},
		{"an older generation is reuse even in the window", func(t *testing.T, ts *testserver.Server) {
			tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
			r1 := mustRefresh(t, ts, tok.RefreshToken)
			mustRefresh(t, ts, r1.Str("refresh_token"))
			wantReason(t, refreshWeb(ts, tok.RefreshToken), oauth.ReasonReused)
		}},
	}
	for _, e := range engines {
		for _, sc := range scenarios {
			t.Run(e.name+"/"+sc.name, func(t *testing.T) {
				sc.run(t, testserver.StartOn(t, e.open(t)))
			})
		}
	}
}

// The browser session lives in the database: the session cookie from a
// sign-in at A works at B, where the consent is remembered too, so a second
// authorization through B — also with prompt=none — needs no page at all.
func TestClusterSessionInDatabase(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	cfgA := c.A.OAuth2Config(testserver.WebClient, testserver.WebSecret, webScopes...)
	cfgB := c.B.OAuth2Config(testserver.WebClient, testserver.WebSecret, webScopes...)

	onA := c.A.Browser()
	verifier := oauth2.GenerateVerifier()
	first := c.A.SignIn(onA, cfgA.AuthCodeURL("s1", oauth2.S256ChallengeOption(verifier)), testserver.Alice, testserver.AlicePW)
	tok1, err := cfgA.Exchange(ctx, first.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	c.remember(first.Query().Get("code"))
	c.A.RememberToken(tok1)

	// A browser holding only A's session cookie, talking to B.
	aURL, _ := url.Parse(c.A.URL)
	bURL, _ := url.Parse(c.B.URL)
	rec := &recorder{}
	onB := flow.NewBrowser(&http.Client{Transport: rec}, testserver.Redirect)
	for _, ck := range onA.Client.Jar.Cookies(aURL) {
		if ck.Name == "latchkey_session" {
			onB.Client.Jar.SetCookies(bURL, []*http.Cookie{ck})
			c.remember(ck.Value)
		}
	}
	if len(onB.Client.Jar.Cookies(bURL)) != 1 {
		t.Fatal("no session cookie from A")
	}
	for _, extra := range [][]oauth2.AuthCodeOption{nil, {oauth2.SetAuthURLParam("prompt", "none")}} {
		v := oauth2.GenerateVerifier()
		page, res, err := onB.Get(cfgB.AuthCodeURL("s2", append(extra, oauth2.S256ChallengeOption(v))...))
		if err != nil {
			t.Fatal(err)
		}
		if res == nil {
			t.Fatalf("B showed a page instead of redirecting with a code: %s %.300s", page.URL, page.Body)
		}
		code := res.Redirect.Query().Get("code")
		if code == "" {
			t.Fatalf("B redirected without a code: %s", res.Redirect)
		}
		c.remember(code)
		tok, err := cfgA.Exchange(ctx, code, oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		c.A.RememberToken(tok)
		// Same sign-in: same subject and auth_time as the ID token from A.
		id1 := c.verifyIDAt(t, c.B, testserver.WebClient, tok1.Extra("id_token").(string))
		id2 := c.verifyIDAt(t, c.A, testserver.WebClient, tok.Extra("id_token").(string))
		var a1, a2 struct {
			AuthTime int64 `json:"auth_time"`
		}
		_ = id1.Claims(&a1)
		_ = id2.Claims(&a2)
		if id1.Subject != id2.Subject || a1.AuthTime != a2.AuthTime {
			t.Errorf("second authorization via B: sub %s/%s auth_time %d/%d", id1.Subject, id2.Subject, a1.AuthTime, a2.AuthTime)
		}
	}
	for _, p := range []string{"/login", "/consent"} {
		if rec.visited(host(c.B) + p) {
			t.Errorf("B showed %s to a browser signed in at A", p)
		}
	}
	// Without the cookie, B knows nobody.
	v := oauth2.GenerateVerifier()
	_, res, err := c.B.Browser().Get(cfgB.AuthCodeURL("s3", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("prompt", "none")))
	if err != nil || res == nil || res.Redirect.Query().Get("error") != oauth.LoginRequired {
		t.Fatalf("prompt=none without a session: %v %+v", err, res)
	}
}

// Key rotation while two instances run, with the default key set: ES256
// (signing_alg: access tokens) and RS256 (the web client's ID tokens). The
// next keys are published before they sign; one rotation moves both
// algorithms; tokens signed before it keep verifying at both instances;
// after the reload interval both sign with the new keys; the retired keys
// leave the JWKS once everything they signed has expired.
func TestClusterKeyRotation(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	st := c.A.Store
	recs, err := st.ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byState := map[string][]string{} // "ES256/active" → kids
	for _, r := range recs {
		byState[r.Alg+"/"+r.State] = append(byState[r.Alg+"/"+r.State], r.ID)
	}
	for _, k := range []string{"ES256/active", "ES256/next", "RS256/active", "RS256/next"} {
		if len(byState[k]) != 1 {
			t.Fatalf("two instances started: %v", byState)
		}
	}
	if len(recs) != 4 {
		t.Fatalf("two instances started: %v", byState)
	}
	e1, e2 := byState["ES256/active"][0], byState["ES256/next"][0]
	r1, r2 := byState["RS256/active"][0], byState["RS256/next"][0]
	initial := jwksOf(t, c.A)
	if !slices.Equal(initial, jwksOf(t, c.B)) || !slices.Equal(initial, sorted(e1, e2, r1, r2)) {
		t.Fatalf("JWKS at start: A %v B %v, want %v", initial, jwksOf(t, c.B), sorted(e1, e2, r1, r2))
	}
	rs256 := "RS256"
	if _, err := operator.UpdateClient(ctx, st, testserver.WebClient, operator.ClientUpdate{IDTokenAlg: &rs256, KeyAlgs: c.A.Config.KeyAlgorithms()}, time.Now()); err != nil {
		t.Fatal(err)
	}

	tok := webLogin(t, c.A, testserver.Alice, testserver.AlicePW)
	c.B.RememberToken(tok)
	oldID, _ := tok.Extra("id_token").(string)
	if kidOf(t, tok.AccessToken) != e1 || kidOf(t, oldID) != r1 {
		t.Fatal("not signed with the active keys")
	}

	sealer, err := keys.NewSealer(c.Master, keys.SealPurpose)
	if err != nil {
		t.Fatal(err)
	}
	// `latchkey keys rotate`, with the servers' configuration.
	op := &keys.Manager{Store: st, Sealer: sealer, Alg: jose.ES256, Algs: server.KeyAlgorithms(c.A.Config), Now: c.Clock.Now}
	// e2 and r2 were published moments ago: refused without force.
	if _, err := op.Rotate(ctx, keys.MinNextAge); err == nil {
		t.Fatal("rotated to a next key published moments ago")
	}
	res, err := op.Rotate(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Activated != e2 || !slices.Equal(sortedOf(res.Retired), sorted(e1, r1)) || res.Created == "" || len(res.Algorithms) != 2 {
		t.Fatalf("rotate: %+v", res)
	}
	rsRot := res.Algorithms[0]
	if rsRot.Alg != "RS256" || rsRot.Activated != r2 || rsRot.Created == "" {
		t.Fatalf("rotate RS256: %+v", rsRot)
	}
	e3, r3 := res.Created, rsRot.Created

	// Until they reload, the instances go on signing with e1 and r1.
	r0 := mustRefresh(t, c.B, tok.RefreshToken)
	c.remember(r0.Str("refresh_token"), r0.Str("access_token"), r0.Str("id_token"))
	if kidOf(t, r0.Str("access_token")) != e1 || kidOf(t, r0.Str("id_token")) != r1 {
		t.Fatalf("B switched keys before its reload interval")
	}

	c.Clock.Advance(keys.ReloadInterval + time.Second)
	rt := r0.Str("refresh_token")
	for _, ts := range c.both() {
		r := mustRefresh(t, ts, rt)
		c.remember(r.Str("refresh_token"), r.Str("access_token"), r.Str("id_token"))
		if kidOf(t, r.Str("access_token")) != e2 || kidOf(t, r.Str("id_token")) != r2 {
			t.Fatalf("%s signs with %s / %s after the reload interval, want %s / %s", ts.URL,
				kidOf(t, r.Str("access_token")), kidOf(t, r.Str("id_token")), e2, r2)
		}
		// New tokens verify at both instances.
		for _, v := range c.both() {
			c.verifyIDAt(t, v, testserver.WebClient, r.Str("id_token"))
		}
		rt = r.Str("refresh_token")
	}
	for _, ts := range c.both() {
		if got := jwksOf(t, ts); !slices.Equal(got, sorted(e1, e2, e3, r1, r2, r3)) {
			t.Fatalf("JWKS at %s after rotation: %v, want retired %s %s, active %s %s, next %s %s", ts.URL, got, e1, r1, e2, r2, e3, r3)
		}
		// Tokens signed with e1 and r1 (before the rotation, and by B after
		// it) still verify everywhere.
		for _, at := range []string{tok.AccessToken, r0.Str("access_token")} {
			if u := userinfo(ts, at); u.Status != 200 {
				t.Errorf("userinfo at %s with an e1 token: %d %v", ts.URL, u.Status, u.Body)
			}
			if !active(introspect(ts, at)) {
				t.Errorf("introspection at %s of an e1 token: inactive", ts.URL)
			}
		}
		c.verifyIDAt(t, ts, testserver.WebClient, oldID)
		c.verifyIDAt(t, ts, testserver.WebClient, r0.Str("id_token"))
	}

	// Once every e1 and r1 token has expired, they leave the JWKS.
	retention := keys.Retention(max(c.A.Config.AccessTokenTTL.D(), c.A.Config.IDTokenTTL.D()), keys.ReloadInterval)
	c.Clock.Advance(retention)
	for _, ts := range c.both() {
		if got := jwksOf(t, ts); !slices.Equal(got, sorted(e2, e3, r2, r3)) {
			t.Fatalf("JWKS at %s after the retention: %v, want %v", ts.URL, got, sorted(e2, e3, r2, r3))
		}
	}
	recs, _ = st.ListSigningKeys(ctx)
	for _, info := range keys.Describe(recs, c.Clock.Now(), retention) {
		if info.Published != (info.ID != e1 && info.ID != r1) {
			t.Errorf("keys list: %s (%s %s) published=%v", info.ID, info.Alg, info.State, info.Published)
		}
	}

	// The next rotation promotes e3 and r3, in the JWKS all along.
	res, err = op.Rotate(ctx, keys.MinNextAge)
	if err != nil || res.Activated != e3 || res.Algorithms[0].Activated != r3 {
		t.Fatalf("second rotation: %+v %v", res, err)
	}
	c.Clock.Advance(keys.ReloadInterval + time.Second)
	for _, ts := range c.both() {
		r := mustRefresh(t, ts, rt)
		c.remember(r.Str("refresh_token"), r.Str("access_token"), r.Str("id_token"))
		if kidOf(t, r.Str("access_token")) != e3 || kidOf(t, r.Str("id_token")) != r3 {
			t.Fatalf("%s does not sign with %s / %s after the second rotation", ts.URL, e3, r3)
		}
		rt = r.Str("refresh_token")
	}
}

func sortedOf(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func sorted(s ...string) []string { slices.Sort(s); return s }

// jwksOf returns the kids an instance publishes, sorted.
func jwksOf(t *testing.T, ts *testserver.Server) []string {
	t.Helper()
	resp, err := http.Get(ts.URL + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	slices.Sort(kids)
	return kids
}

// kidOf returns the key id in a JWS header.
func kidOf(t *testing.T, raw string) string {
	t.Helper()
	h, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Kid
}
