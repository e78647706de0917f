package server_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/testserver"
)

func webLogin(t *testing.T, ts *testserver.Server, user, pw string) *oauth2.Token {
	t.Helper()
	return ts.Login(ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "profile", "offline_access"), user, pw)
}

func refreshWeb(ts *testserver.Server, rt string) testserver.Response {
	return ts.Refresh(rt, testserver.WebClient, testserver.WebSecret)
}

func mustRefresh(t *testing.T, ts *testserver.Server, rt string) testserver.Response {
	t.Helper()
	r := refreshWeb(ts, rt)
	if r.Status != 200 || r.Str("refresh_token") == "" {
		t.Fatalf("refresh: %d %v", r.Status, r.Body)
	}
	return r
}

func wantReason(t *testing.T, r testserver.Response, reason string) {
	t.Helper()
	testserver.WantError(t, r, http.StatusBadRequest, "invalid_grant")
	if got := r.Str("error_reason"); got != reason {
		t.Fatalf("error_reason = %q, want %q (%v)", got, reason, r.Body)
	}
}

func introspect(ts *testserver.Server, tok string) testserver.Response {
	return ts.Post("/introspect", url.Values{"token": {tok}}, testserver.WebClient, testserver.WebSecret)
}

func active(r testserver.Response) bool { b, _ := r.Body["active"].(bool); return b }

func audits(t *testing.T, ts *testserver.Server, f store.AuditFilter) []string {
	t.Helper()
	f.Limit = 1000
	evs, err := ts.Store.ListAudit(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type+"/"+e.Reason)
	}
	return types
}

// Dozens of concurrent refreshes with one token (several tabs, retries):
// every one succeeds with the same successor; none is a 5xx; the family
// stays one chain.
func TestConcurrentRefreshSameToken(t *testing.T) {
	ts := testserver.Start(t)
	tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
	const n = 40
	var wg sync.WaitGroup
	results := make([]testserver.Response, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = refreshWeb(ts, tok.RefreshToken)
		}()
	}
	close(start)
	wg.Wait()
	successor := ""
	for i, r := range results {
		if r.Status != 200 {
			t.Fatalf("request %d: %d %v", i, r.Status, r.Body)
		}
		if successor == "" {
			successor = r.Str("refresh_token")
		}
		if r.Str("refresh_token") != successor {
			t.Fatalf("request %d got a different successor: the family forked", i)
		}
	}
	f := familyOf(t, ts, tok.RefreshToken)
	if f.Generation != 2 || !f.RevokedAt.IsZero() {
		t.Fatalf("family after concurrent refresh: generation %d revoked %v", f.Generation, f.RevokeReason)
	}
	// The successor works and closes the window for the predecessor.
	next := mustRefresh(t, ts, successor)
	wantReason(t, refreshWeb(ts, tok.RefreshToken), oauth.ReasonReused)
	wantReason(t, refreshWeb(ts, next.Str("refresh_token")), oauth.ReasonReused)
}

func familyOf(t *testing.T, ts *testserver.Server, rt string) *store.Family {
	t.Helper()
	r := introspect(ts, rt)
	fid, _ := r.Body["fid"].(string)
	if fid == "" {
		// Inactive tokens don't say their family; find it through the store.
		fs, err := ts.Store.ListFamilies(context.Background(), store.FamilyFilter{ClientID: testserver.WebClient})
		if err != nil || len(fs) == 0 {
			t.Fatalf("no family: %v", err)
		}
		return fs[0]
	}
	f, err := ts.Store.GetFamily(context.Background(), fid)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestGraceWindowAndReuse(t *testing.T) {
	ts := testserver.Start(t)
	tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
	r1 := mustRefresh(t, ts, tok.RefreshToken)

	// A lost response: the app retries with the old token inside the
	// window and gets the very same successor.
	ts.Clock.Advance(2 * time.Second)
	retry := mustRefresh(t, ts, tok.RefreshToken)
	if retry.Str("refresh_token") != r1.Str("refresh_token") {
		t.Fatal("grace-window retry returned a different successor")
	}
	if retry.Str("access_token") == r1.Str("access_token") {
		t.Error("grace-window retry reused the access token")
	}

	// After the window, presenting the predecessor is reuse: the whole
	// family ends, including the legitimate newest token.
	ts.Clock.Advance(ts.Config.RefreshGrace.D())
	wantReason(t, refreshWeb(ts, tok.RefreshToken), oauth.ReasonReused)
	wantReason(t, refreshWeb(ts, r1.Str("refresh_token")), oauth.ReasonReused)
	if active(introspect(ts, r1.Str("access_token"))) {
		t.Error("access token of a reused family still active")
	}
	if !slices.Contains(audits(t, ts, store.AuditFilter{ClientID: testserver.WebClient}), family.EventEnded+"/"+oauth.ReasonReused) {
		t.Error("no audit event for reuse")
	}
}

func TestOlderGenerationIsReuseEvenInWindow(t *testing.T) {
	ts := testserver.Start(t)
	tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
	r1 := mustRefresh(t, ts, tok.RefreshToken)
	mustRefresh(t, ts, r1.Str("refresh_token")) // the successor was used: the window closes
	wantReason(t, refreshWeb(ts, tok.RefreshToken), oauth.ReasonReused)
}

// Signing in on a second device starts an independent family.
func TestFamiliesAreIndependent(t *testing.T) {
	ts := testserver.Start(t)
	phone := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
	laptop := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
	mustRefresh(t, ts, phone.RefreshToken)
	ts.Clock.Advance(time.Minute)
	wantReason(t, refreshWeb(ts, phone.RefreshToken), oauth.ReasonReused)
	mustRefresh(t, ts, laptop.RefreshToken)
}

func TestReuseReportOnly(t *testing.T) {
	ts := testserver.Start(t)
	yes := true
	if _, err := operator.UpdateClient(context.Background(), ts.Store, testserver.WebClient, operator.ClientUpdate{ReuseReportOnly: &yes}, time.Now()); err != nil {
		t.Fatal(err)
	}
	tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
	r1 := mustRefresh(t, ts, tok.RefreshToken)
	ts.Clock.Advance(time.Minute)
	replay := refreshWeb(ts, tok.RefreshToken)
	if replay.Status != 200 || replay.Str("refresh_token") != r1.Str("refresh_token") {
		t.Fatalf("report-only replay: %d %v", replay.Status, replay.Body)
	}
	mustRefresh(t, ts, r1.Str("refresh_token"))
	if !slices.Contains(audits(t, ts, store.AuditFilter{ClientID: testserver.WebClient}), family.EventReuseReported+"/"+oauth.ReasonReused) {
		t.Error("no reuse_reported audit event")
	}
}

func num(r testserver.Response, k string) int64 { f, _ := r.Body[k].(float64); return int64(f) }

func TestIdleAndAbsoluteExpiry(t *testing.T) {
	ts := testserver.Start(t)
	idle, abs := time.Hour, 150*time.Minute
	if _, err := operator.UpdateClient(context.Background(), ts.Store, testserver.WebClient, operator.ClientUpdate{RefreshIdle: &idle, RefreshAbsolute: &abs}, time.Now()); err != nil {
		t.Fatal(err)
	}
	tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
	deadline := tok.Extra("refresh_token_absolute_expires_at")
	if in := tok.Extra("refresh_token_expires_in"); in == nil || int64(in.(float64)) > int64(idle/time.Second) {
		t.Fatalf("refresh_token_expires_in = %v", in)
	}
	rt := tok.RefreshToken
	// Sliding: refreshing every 50 minutes keeps it alive…
	for range 2 {
		ts.Clock.Advance(50 * time.Minute)
		r := mustRefresh(t, ts, rt)
		if r.Body["refresh_token_absolute_expires_at"] != deadline {
			t.Fatalf("absolute deadline moved on rotation: %v → %v", deadline, r.Body["refresh_token_absolute_expires_at"])
		}
		rt = r.Str("refresh_token")
		ir := introspect(ts, rt)
		if !active(ir) || num(ir, "absolute_exp") != int64(deadline.(float64)) || num(ir, "exp") == 0 {
			t.Fatalf("introspection of a live refresh token: %v", ir.Body)
		}
	}
	// …until the absolute lifetime ends (expires_in is capped by it).
	ts.Clock.Advance(45 * time.Minute) // 145 min
	r := mustRefresh(t, ts, rt)
	if e := num(r, "refresh_token_expires_in"); e > int64(6*time.Minute/time.Second) {
		t.Errorf("refresh_token_expires_in %d not capped by the absolute deadline", e)
	}
	ts.Clock.Advance(6 * time.Minute)
	wantReason(t, refreshWeb(ts, r.Str("refresh_token")), oauth.ReasonExpiredAbsolute)

	// Idle expiry.
	tok2 := webLogin(t, ts, testserver.Bob, testserver.BobPW)
	ts.Clock.Advance(61 * time.Minute)
	if active(introspect(ts, tok2.RefreshToken)) {
		t.Error("idle-expired refresh token is active")
	}
	wantReason(t, refreshWeb(ts, tok2.RefreshToken), oauth.ReasonExpiredIdle)
}

func TestRevocationEndpoint(t *testing.T) {
	ts := testserver.Start(t)
	revoke := func(tok, hint, client, secret string) testserver.Response {
		f := url.Values{"token": {tok}}
		if hint != "" {
			f.Set("token_type_hint", hint)
		}
		return ts.Post("/revoke", f, client, secret)
	}
	t.Run("refresh token ends the family", func(t *testing.T) {
		tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
		r1 := mustRefresh(t, ts, tok.RefreshToken)
		if r := revoke(r1.Str("refresh_token"), "refresh_token", testserver.WebClient, testserver.WebSecret); r.Status != 200 {
			t.Fatalf("revoke: %d %v", r.Status, r.Body)
		}
		wantReason(t, refreshWeb(ts, r1.Str("refresh_token")), oauth.ReasonRevoked)
		if active(introspect(ts, r1.Str("access_token"))) {
			t.Error("access token from a revoked family is active")
		}
	})
	t.Run("wrong hint still works", func(t *testing.T) {
		tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
		if r := revoke(tok.RefreshToken, "access_token", testserver.WebClient, testserver.WebSecret); r.Status != 200 {
			t.Fatalf("revoke: %d", r.Status)
		}
		wantReason(t, refreshWeb(ts, tok.RefreshToken), oauth.ReasonRevoked)
	})
	t.Run("access token", func(t *testing.T) {
		tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
		if !active(introspect(ts, tok.AccessToken)) {
			t.Fatal("fresh access token inactive")
		}
		if r := revoke(tok.AccessToken, "access_token", testserver.WebClient, testserver.WebSecret); r.Status != 200 {
			t.Fatalf("revoke: %d", r.Status)
		}
		if active(introspect(ts, tok.AccessToken)) {
			t.Error("revoked access token is active")
		}
		mustRefresh(t, ts, tok.RefreshToken) // the family lives on
	})
	t.Run("unknown token is 200", func(t *testing.T) {
		for _, tok := range []string{"lkrt_unknown", "eyJhbGciOiJub25lIn0.e30.", "garbage"} {
			if r := revoke(tok, "", testserver.WebClient, testserver.WebSecret); r.Status != 200 {
				t.Errorf("revoke %q: %d", tok, r.Status)
			}
		}
	})
	t.Run("another client's token", func(t *testing.T) {
		tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
		r := revoke(tok.RefreshToken, "", testserver.OtherClient, testserver.OtherSecret)
		testserver.WantError(t, r, 400, "unauthorized_client")
		r = revoke(tok.AccessToken, "", testserver.OtherClient, testserver.OtherSecret)
		testserver.WantError(t, r, 400, "unauthorized_client")
		mustRefresh(t, ts, tok.RefreshToken)
	})
	t.Run("needs client authentication", func(t *testing.T) {
		r := revoke("lkrt_x", "", testserver.WebClient, "wrong-secret-wrong-secret-wrong")
		testserver.WantError(t, r, 401, "invalid_client")
		testserver.WantError(t, ts.Post("/revoke", url.Values{}, testserver.WebClient, testserver.WebSecret), 400, "invalid_request")
	})
	t.Run("public client revokes its own", func(t *testing.T) {
		tok := ts.Login(ts.OAuth2Config(testserver.SPAClient, "", "openid", "offline_access"), testserver.Bob, testserver.BobPW)
		if r := ts.Post("/revoke", url.Values{"token": {tok.RefreshToken}, "client_id": {testserver.SPAClient}}, "", ""); r.Status != 200 {
			t.Fatalf("public revoke: %d %v", r.Status, r.Body)
		}
		r := ts.Refresh(tok.RefreshToken, testserver.SPAClient, "")
		wantReason(t, r, oauth.ReasonRevoked)
	})
}

func TestIntrospection(t *testing.T) {
	ts := testserver.Start(t)
	tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
	at := introspect(ts, tok.AccessToken)
	if !active(at) || at.Str("token_type") != "access_token" || at.Str("client_id") != testserver.WebClient ||
		at.Str("sub") == "" || num(at, "exp") == 0 || num(at, "iat") == 0 || at.Str("scope") == "" {
		t.Fatalf("access token introspection: %v", at.Body)
	}
	rt := introspect(ts, tok.RefreshToken)
	if !active(rt) || rt.Str("token_type") != "refresh_token" || rt.Str("sub") != at.Str("sub") || num(rt, "absolute_exp") == 0 {
		t.Fatalf("refresh token introspection: %v", rt.Body)
	}
	// A resource server (another confidential client) may introspect access
	// tokens, but refresh tokens only by their own client.
	other := ts.Post("/introspect", url.Values{"token": {tok.AccessToken}}, testserver.OtherClient, testserver.OtherSecret)
	if !active(other) {
		t.Errorf("resource server introspection: %v", other.Body)
	}
	other = ts.Post("/introspect", url.Values{"token": {tok.RefreshToken}}, testserver.OtherClient, testserver.OtherSecret)
	if active(other) || len(other.Body) != 1 {
		t.Errorf("another client's refresh token: %v", other.Body)
	}
	// Rotated → the old refresh token is inactive at once.
	r1 := mustRefresh(t, ts, tok.RefreshToken)
	if active(introspect(ts, tok.RefreshToken)) || !active(introspect(ts, r1.Str("refresh_token"))) {
		t.Error("rotation not reflected by introspection")
	}
	// Public clients cannot introspect.
	pub := ts.Post("/introspect", url.Values{"token": {tok.AccessToken}, "client_id": {testserver.SPAClient}}, "", "")
	testserver.WantError(t, pub, 401, "invalid_client")
	// Garbage is inactive, not an error.
	if g := introspect(ts, "not-a-token"); g.Status != 200 || active(g) {
		t.Errorf("garbage: %d %v", g.Status, g.Body)
	}
	if active(introspect(ts, tok.AccessToken+"x")) {
		t.Error("tampered access token active")
	}
	// Expired access token.
	ts.Clock.Advance(ts.Config.AccessTokenTTL.D() + time.Second)
	if active(introspect(ts, r1.Str("access_token"))) {
		t.Error("expired access token active")
	}
}

// The account page lists the app and its Revoke button withdraws consent.
func TestAccountPageRevoke(t *testing.T) {
	ts := testserver.Start(t)
	cfg := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "offline_access")
	b := ts.Browser()
	verifier := oauth2.GenerateVerifier()
	cb := ts.SignIn(b, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), testserver.Alice, testserver.AlicePW)
	tok, err := cfg.Exchange(context.Background(), cb.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	ts.RememberToken(tok)
	page, _, err := b.Get(ts.URL + "/account")
	if err != nil {
		t.Fatal(err)
	}
	form := page.FormWith("client_id")
	if page.Status != 200 || form == nil || form.Fields.Get("client_id") != testserver.WebClient {
		t.Fatalf("account page: %d %.500s", page.Status, page.Body)
	}
	for _, want := range []string{"Web App", "Stay connected", "First authorized"} {
		if !contains(page.Body, want) {
			t.Errorf("account page lacks %q", want)
		}
	}
	// Revoking needs the CSRF token.
	bad, _, _ := b.Submit(form, map[string]string{"csrf_token": "nope"}, "", "")
	if bad == nil || bad.Status != 403 {
		t.Fatalf("revoke without CSRF: %+v", bad)
	}
	page, _, err = b.Submit(form, nil, "", "")
	if err != nil || page.Status != 200 || !contains(page.Body, "was revoked") {
		t.Fatalf("after revoke: %v %d", err, page.Status)
	}
	wantReason(t, refreshWeb(ts, tok.RefreshToken), oauth.ReasonConsentWithdrawn)
	// The consent is forgotten: the next sign-in asks again.
	p2, res, _ := b.Get(cfg.AuthCodeURL("s2", oauth2.S256ChallengeOption(verifier)))
	if res != nil || p2 == nil || p2.FormWith("decision") == nil {
		t.Fatal("consent page not shown after revoking")
	}
	// Signed out → the account page sends you to sign in.
	anon, _, _ := ts.Browser().Get(ts.URL + "/account")
	if anon == nil || anon.FormWith("password") == nil {
		t.Fatal("anonymous /account did not show the sign-in form")
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestOperatorActionsEndFamilies(t *testing.T) {
	ts := testserver.Start(t)
	ctx := context.Background()
	fam := &family.Service{Store: ts.Store, Log: ts.Log, Now: time.Now}
	now := time.Now()

	tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
	if err := operator.SetDisabled(ctx, ts.Store, fam, testserver.Alice, true, now); err != nil {
		t.Fatal(err)
	}
	wantReason(t, refreshWeb(ts, tok.RefreshToken), oauth.ReasonUserDisabled)
	if err := operator.SetDisabled(ctx, ts.Store, fam, testserver.Alice, false, now); err != nil {
		t.Fatal(err)
	}

	tok = webLogin(t, ts, testserver.Alice, testserver.AlicePW)
	if n, err := operator.RevokeTokens(ctx, ts.Store, fam, testserver.Alice, testserver.WebClient); err != nil || n != 1 {
		t.Fatalf("revoke tokens: %d %v", n, err)
	}
	wantReason(t, refreshWeb(ts, tok.RefreshToken), oauth.ReasonOperator)

	tok = webLogin(t, ts, testserver.Alice, testserver.AlicePW)
	if _, err := operator.SetPassword(ctx, ts.Store, fam, testserver.Alice, "a brand new password", true, now); err != nil {
		t.Fatal(err)
	}
	wantReason(t, refreshWeb(ts, tok.RefreshToken), oauth.ReasonCredentials)

	tok = ts.Login(ts.OAuth2Config(testserver.OtherClient, testserver.OtherSecret, "openid", "offline_access"), testserver.Bob, testserver.BobPW)
	if err := operator.DeleteClient(ctx, ts.Store, fam, testserver.OtherClient); err != nil {
		t.Fatal(err)
	}
	fs, err := ts.Store.ListFamilies(ctx, store.FamilyFilter{ClientID: testserver.OtherClient})
	if err != nil || len(fs) != 1 || fs[0].RevokeReason != oauth.ReasonClientDeleted {
		t.Fatalf("families of a deleted client: %v %v", fs, err)
	}
}

// A revocation can never be outlived by a concurrent refresh: once the
// revocation returns, every token the family ever produced is dead.
func TestRevokeRefreshRace(t *testing.T) {
	ts := testserver.Start(t)
	for round := range 5 {
		tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var got []string
		start := make(chan struct{})
		for range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r := refreshWeb(ts, tok.RefreshToken)
				if r.Status >= 500 {
					t.Errorf("round %d: %d %v", round, r.Status, r.Body)
				}
				if rt := r.Str("refresh_token"); rt != "" {
					mu.Lock()
					got = append(got, rt)
					mu.Unlock()
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if r := ts.Post("/revoke", url.Values{"token": {tok.RefreshToken}}, testserver.WebClient, testserver.WebSecret); r.Status != 200 {
				t.Errorf("revoke: %d", r.Status)
			}
		}()
		close(start)
		wg.Wait()
		for _, rt := range append(got, tok.RefreshToken) {
			wantReason(t, refreshWeb(ts, rt), oauth.ReasonRevoked)
		}
	}
}

// Every issue, rotation, refusal and end is audited.
func TestAuditTrail(t *testing.T) {
	ts := testserver.Start(t)
	tok := webLogin(t, ts, testserver.Bob, testserver.BobPW)
	mustRefresh(t, ts, tok.RefreshToken)
	ts.Clock.Advance(time.Minute)
	refreshWeb(ts, tok.RefreshToken)
	refreshWeb(ts, tok.RefreshToken)
	got := audits(t, ts, store.AuditFilter{ClientID: testserver.WebClient})
	for _, want := range []string{family.EventIssued + "/", family.EventRotated + "/", family.EventEnded + "/" + oauth.ReasonReused, family.EventRefused + "/" + oauth.ReasonReused} {
		if !slices.Contains(got, want) {
			t.Errorf("audit lacks %s: %v", want, got)
		}
	}
}

// The sweeper deletes dead and expired families, so tables shrink back.
func TestSweepShrinksTables(t *testing.T) {
	ts := testserver.Start(t)
	ctx := context.Background()
	for range 6 {
		tok := webLogin(t, ts, testserver.Bob, testserver.BobPW)
		rt := tok.RefreshToken
		for range 5 {
			rt = mustRefresh(t, ts, rt).Str("refresh_token")
		}
	}
	before, _ := ts.Store.ListFamilies(ctx, store.FamilyFilter{UserID: ""})
	if len(before) != 6 {
		t.Fatalf("families: %d, want one row per family (not per refresh)", len(before))
	}
	ts.Clock.Advance(ts.Config.RefreshAbsolute.D() + 48*time.Hour)
	total := 0
	for {
		n, err := ts.Store.Sweep(ctx, ts.Clock.Now(), 24*time.Hour, 2)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	after, _ := ts.Store.ListFamilies(ctx, store.FamilyFilter{})
	if len(after) != 0 || total < 6 {
		t.Fatalf("after sweeping: %d families left, %d rows deleted", len(after), total)
	}
}
