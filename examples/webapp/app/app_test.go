package app_test

// End-to-end tests of the example app against a real Latchkey
// (internal/testserver) over HTTP: sign-in goes through Latchkey's real
// pages with internal/flow, the app and the server share one movable clock.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/examples/webapp/app"
	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/flow"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/testserver"
)

const (
	clientID     = "example-webapp"
	clientSecret = "example-webapp-secret-0123456789abcdefghij"
	revokedMsg   = "Your access was revoked (reason: consent_withdrawn). Sign in again."
)

// env is a Latchkey test server and the example app in front of it.
type env struct {
	t      *testing.T
	ts     *testserver.Server
	app    *app.App
	url    string
	tr     *latchkeyTransport
	store  *recordingStore
	rec    *responseRecorder
	appLog *testserver.SyncBuffer
}

type options struct {
	client func(*operator.ClientSpec)
	cfg    func(*app.Config)
}

func start(t *testing.T, o options) *env {
	t.Helper()
	ts := testserver.Start(t)
	hs := httptest.NewUnstartedServer(nil)
	e := &env{
		t: t, ts: ts, url: "http://" + hs.Listener.Addr().String(),
		tr:     &latchkeyTransport{ts: ts, base: http.DefaultTransport.(*http.Transport).Clone()},
		store:  &recordingStore{MemoryStore: app.NewMemoryStore()},
		rec:    &responseRecorder{},
		appLog: &testserver.SyncBuffer{},
	}
	spec := operator.ClientSpec{ID: clientID, Name: "Example Web App", Secret: clientSecret, RedirectURIs: []string{e.url + "/callback"}}
	if o.client != nil {
		o.client(&spec)
	}
	if _, err := operator.CreateClient(context.Background(), ts.Store, spec, time.Now().UTC().Truncate(time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	ts.Remember(clientSecret)
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	cfg := app.Config{
		Issuer: ts.URL, ClientID: clientID, ClientSecret: clientSecret, RedirectURL: e.url + "/callback",
		SessionKey: key, Sessions: e.store, HTTPClient: &http.Client{Transport: e.tr, Timeout: 10 * time.Second},
		Now: ts.Clock.Now, Log: slog.New(slog.NewTextHandler(e.appLog, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	a, err := app.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.app = a
	hs.Config.Handler = e.rec.wrap(a.Handler())
	hs.Start()
	t.Cleanup(hs.Close)
	t.Cleanup(e.checkNoTokenLeaks)
	return e
}

// latchkeyTransport is the app's HTTP client to Latchkey. It counts refresh
// grants, can slow them down, and collects every token Latchkey issued.
type latchkeyTransport struct {
	ts           *testserver.Server
	base         http.RoundTripper
	refreshes    atomic.Int32
	exchanges    atomic.Int32
	refreshDelay atomic.Int64 // nanoseconds

	mu     sync.Mutex
	tokens []string // access and refresh tokens, ID tokens
	rts    []string // refresh tokens, in order
}

func (tr *latchkeyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	isToken := r.Method == http.MethodPost && r.URL.Path == "/token"
	if isToken {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		f, _ := url.ParseQuery(string(b))
		switch f.Get("grant_type") {
		case "refresh_token":
			tr.refreshes.Add(1)
			time.Sleep(time.Duration(tr.refreshDelay.Load()))
		case "authorization_code":
			tr.exchanges.Add(1)
		}
	}
	resp, err := tr.base.RoundTrip(r)
	if err != nil || !isToken {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, k := range []string{"access_token", "refresh_token", "id_token"} {
		if s, _ := body[k].(string); s != "" {
			tr.tokens = append(tr.tokens, s)
			tr.ts.Remember(s)
			if k == "refresh_token" {
				tr.rts = append(tr.rts, s)
			}
		}
	}
	return resp, nil
}

// refreshTokens returns the refresh tokens Latchkey issued to the app.
func (tr *latchkeyTransport) refreshTokens() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.rts)
}

// recordingStore is a MemoryStore that keeps a copy of every session written.
type recordingStore struct {
	*app.MemoryStore
	mu      sync.Mutex
	written []app.Session
}

func (s *recordingStore) Create(ctx context.Context, key string, v *app.Session) error {
	s.mu.Lock()
	s.written = append(s.written, *v)
	s.mu.Unlock()
	return s.MemoryStore.Create(ctx, key, v)
}

func (s *recordingStore) Replace(ctx context.Context, key string, v *app.Session) error {
	s.mu.Lock()
	s.written = append(s.written, *v)
	s.mu.Unlock()
	return s.MemoryStore.Replace(ctx, key, v)
}

// responseRecorder keeps the headers and body of every response the app sent.
type responseRecorder struct {
	mu        sync.Mutex
	responses []string
}

type teeWriter struct {
	http.ResponseWriter
	buf bytes.Buffer
}

func (w *teeWriter) Write(b []byte) (int, error) {
	w.buf.Write(b)
	return w.ResponseWriter.Write(b)
}

func (rr *responseRecorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &teeWriter{ResponseWriter: w}
		h.ServeHTTP(tw, r)
		var dump strings.Builder
		_ = w.Header().Write(&dump)
		dump.WriteString("\r\n")
		dump.Write(tw.buf.Bytes())
		rr.mu.Lock()
		rr.responses = append(rr.responses, dump.String())
		rr.mu.Unlock()
	})
}

// setCookies returns the app's Set-Cookie headers for name, parsed.
func (rr *responseRecorder) setCookies(t *testing.T, name string) []*http.Cookie {
	t.Helper()
	rr.mu.Lock()
	defer rr.mu.Unlock()
	var out []*http.Cookie
	for _, resp := range rr.responses {
		head, _, _ := strings.Cut(resp, "\r\n\r\n")
		for line := range strings.SplitSeq(head, "\r\n") {
			v, ok := strings.CutPrefix(line, "Set-Cookie: ")
			if !ok {
				continue
			}
			c, err := http.ParseSetCookie(v)
			if err != nil {
				t.Fatalf("bad Set-Cookie %q: %v", v, err)
			}
			if c.Name == name {
				out = append(out, c)
			}
		}
	}
	return out
}

// checkNoTokenLeaks fails the test if a token Latchkey issued to the app
// appears in a response of the app (headers, cookies, body), in the app's
// log, or unsealed in its session store.
func (e *env) checkNoTokenLeaks() {
	e.tr.mu.Lock()
	tokens := slices.Clone(e.tr.tokens)
	e.tr.mu.Unlock()
	e.rec.mu.Lock()
	responses := slices.Clone(e.rec.responses)
	e.rec.mu.Unlock()
	e.store.mu.Lock()
	written := slices.Clone(e.store.written)
	e.store.mu.Unlock()
	logs := e.appLog.String()
	for _, tok := range tokens {
		// A token, or a piece of one long enough to matter.
		probe := tok[:min(len(tok), 24)]
		for i, resp := range responses {
			if strings.Contains(resp, probe) {
				e.t.Errorf("response %d of the app contains a token (%.8s…)", i, tok)
			}
		}
		if strings.Contains(logs, probe) {
			e.t.Errorf("the app logged a token (%.8s…)", tok)
		}
		for _, s := range written {
			for _, b := range [][]byte{s.AccessToken, s.RefreshToken} {
				if bytes.Contains(b, []byte(probe)) {
					e.t.Errorf("a token (%.8s…) is stored unsealed", tok)
				}
			}
		}
	}
}

// signIn signs user in to the app through Latchkey's real pages and
// returns the browser, now on the app's home page.
func (e *env) signIn(user, pw string) *flow.Browser {
	e.t.Helper()
	b := flow.NewBrowser(nil, e.url+"/callback")
	cb, err := b.Authorize(e.url+"/login", user, pw)
	if err != nil {
		e.t.Fatal(err)
	}
	if got := cb.Scheme + "://" + cb.Host + cb.Path; got != e.url+"/callback" {
		e.t.Fatalf("Latchkey redirected to %s, want the app's callback", cb)
	}
	e.ts.Remember(cb.Query().Get("code"))
	status, body := e.get(b, cb.String())
	if status != http.StatusOK || !strings.Contains(body, `id="profile"`) {
		e.t.Fatalf("after the callback the app answered %d:\n%s", status, body)
	}
	return b
}

// get fetches u (a path of the app, or a URL) with b and returns status and body.
func (e *env) get(b *flow.Browser, u string) (int, string) {
	e.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = e.url + u
	}
	resp, err := b.Client.Get(u)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// audit counts the server's audit events for the app by type.
func (e *env) audit() map[string]int {
	e.t.Helper()
	evs, err := e.ts.Store.ListAudit(context.Background(), store.AuditFilter{ClientID: clientID, Limit: 10000})
	if err != nil {
		e.t.Fatal(err)
	}
	n := map[string]int{}
	for _, ev := range evs {
		n[ev.Type]++
		if ev.Reason != "" {
			n[ev.Type+":"+ev.Reason]++
		}
	}
	return n
}

// field is the text of the element with id on the app's page.
func field(t *testing.T, body, id string) string {
	t.Helper()
	_, rest, ok := strings.Cut(body, `id="`+id+`">`)
	if !ok {
		t.Fatalf("no element #%s on the page:\n%s", id, body)
	}
	v, _, _ := strings.Cut(rest, "<")
	return v
}

// wantLeft checks the page's "expires in" duration is within [lo, hi]
// (real time passes between the token's issue and the page).
func wantLeft(t *testing.T, s string, lo, hi time.Duration) {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil || d < lo || d > hi {
		t.Errorf("the access token expires in %q, want between %v and %v", s, lo, hi)
	}
}

func hasSessionCookie(b *flow.Browser, appURL string) bool {
	u, _ := url.Parse(appURL)
	for _, c := range b.Client.Jar.Cookies(u) {
		if c.Name == "webapp_session" {
			return true
		}
	}
	return false
}

func TestSignIn(t *testing.T) {
	t.Parallel()
	e := start(t, options{})
	anon := flow.NewBrowser(nil, e.url+"/callback")
	status, body := e.get(anon, "/")
	if status != http.StatusOK || !strings.Contains(body, `href="/login"`) {
		t.Fatalf("signed-out home %d:\n%s", status, body)
	}

	b := e.signIn(testserver.Alice, testserver.AlicePW)
	_, body = e.get(b, "/")
	alice, err := e.ts.Store.GetUserByUsername(context.Background(), testserver.Alice)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{
		"profile-name": "Alice Liddell", "profile-fullname": "Alice Liddell", "profile-username": testserver.Alice,
		"profile-email": "alice@example.com", "refreshes": "0",
	} {
		if got := field(t, body, id); got != want {
			t.Errorf("#%s = %q, want %q", id, got, want)
		}
	}
	if !strings.Contains(body, alice.ID) {
		t.Errorf("the profile does not show sub %s", alice.ID)
	}
	if got := e.tr.exchanges.Load(); got != 1 {
		t.Errorf("%d code exchanges, want 1", got)
	}

	// The session cookie: opaque, random, HttpOnly, SameSite=Lax.
	cookies := e.rec.setCookies(t, "webapp_session")
	if len(cookies) != 1 {
		t.Fatalf("%d Set-Cookie webapp_session, want 1", len(cookies))
	}
	c := cookies[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge <= 0 {
		t.Errorf("session cookie %s: want HttpOnly, SameSite=Lax, Path=/, Max-Age", c)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(c.Value); err != nil || len(raw) != 32 {
		t.Errorf("session cookie value %q is not 32 random bytes", c.Value)
	}
	// The login cookie was cleared at the callback.
	if lc := e.rec.setCookies(t, "webapp_login"); len(lc) != 2 || lc[1].MaxAge >= 0 {
		t.Errorf("login cookie not set then cleared: %v", lc)
	}
	if n := e.audit(); n[family.EventIssued] != 1 {
		t.Errorf("audit %v: want one family issued", n)
	}
}

func TestRefreshBeforeExpiry(t *testing.T) {
	t.Parallel()
	e := start(t, options{})
	b := e.signIn(testserver.Alice, testserver.AlicePW)
	ttl := e.ts.Config.AccessTokenTTL.D()

	// 90 s left: more than the 60 s margin, no refresh.
	e.ts.Clock.Advance(ttl - 90*time.Second)
	_, body := e.get(b, "/")
	if got := e.tr.refreshes.Load(); got != 0 {
		t.Fatalf("%d refreshes with 90 s left, want 0", got)
	}
	wantLeft(t, field(t, body, "access-left"), 70*time.Second, 90*time.Second)

	// 50 s left: the next request refreshes first.
	e.ts.Clock.Advance(40 * time.Second)
	status, body := e.get(b, "/")
	if status != http.StatusOK {
		t.Fatalf("status %d:\n%s", status, body)
	}
	if got := e.tr.refreshes.Load(); got != 1 {
		t.Fatalf("%d refreshes with 50 s left, want 1", got)
	}
	if got := field(t, body, "refreshes"); got != "1" {
		t.Errorf("page shows %s refreshes, want 1", got)
	}
	wantLeft(t, field(t, body, "access-left"), ttl-20*time.Second, ttl)
	if got := field(t, body, "profile-email"); got != "alice@example.com" {
		t.Errorf("profile email %q after the refresh", got)
	}

	// The new token is fresh: no more refreshes.
	e.get(b, "/")
	if got := e.tr.refreshes.Load(); got != 1 {
		t.Errorf("%d refreshes after reloading with a fresh token, want 1", got)
	}
	n := e.audit()
	if n[family.EventRotated] != 1 || n[family.EventGraceReplay] != 0 || n[family.EventEnded] != 0 {
		t.Errorf("audit %v: want exactly one rotation and nothing else", n)
	}
	if rts := e.tr.refreshTokens(); len(rts) != 2 || rts[0] == rts[1] {
		t.Errorf("want two distinct refresh tokens (issued, rotated), got %d", len(rts))
	}
}

// TestOneRefreshInFlight: 20 requests of one session arrive while the
// token needs refreshing; exactly one refresh grant reaches Latchkey.
func TestOneRefreshInFlight(t *testing.T) {
	t.Parallel()
	e := start(t, options{})
	b := e.signIn(testserver.Alice, testserver.AlicePW)
	e.ts.Clock.Advance(e.ts.Config.AccessTokenTTL.D() - 30*time.Second)
	// A slow token endpoint, so the requests pile up behind the refresh.
	e.tr.refreshDelay.Store(int64(300 * time.Millisecond))

	const n = 20
	var wg sync.WaitGroup
	begin := make(chan struct{})
	results := make([]string, n)
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			<-begin
			resp, err := b.Client.Get(e.url + "/")
			if err != nil {
				results[i] = err.Error()
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			statuses[i], results[i] = resp.StatusCode, string(body)
		})
	}
	close(begin)
	wg.Wait()
	for i := range n {
		if statuses[i] != http.StatusOK || !strings.Contains(results[i], "alice@example.com") {
			t.Errorf("request %d: %d %.300s", i, statuses[i], results[i])
		}
	}
	if got := e.tr.refreshes.Load(); got != 1 {
		t.Errorf("%d refresh grants sent, want 1", got)
	}
	c := e.audit()
	if c[family.EventRotated] != 1 || c[family.EventGraceReplay] != 0 || c[family.EventEnded] != 0 || c[family.EventRefused] != 0 {
		t.Errorf("audit %v: want exactly one rotation, no grace replay, refusal or ended family", c)
	}
	fams, err := e.ts.Store.ListFamilies(context.Background(), store.FamilyFilter{ClientID: clientID, LiveOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	// Issued at generation 1; one rotation makes 2.
	if len(fams) != 1 {
		t.Errorf("%d live families, want 1", len(fams))
	} else if fams[0].Generation != 2 {
		t.Errorf("family at generation %d, want 2", fams[0].Generation)
	}
}

// TestRevoked: the user revokes the app on Latchkey's account page; the
// app's next request finds out, ends the session and says why.
func TestRevoked(t *testing.T) {
	t.Parallel()
	e := start(t, options{})
	b := e.signIn(testserver.Alice, testserver.AlicePW)

	// Revoke on Latchkey's account page, in the same browser.
	page, res, err := b.Get(e.ts.URL + "/account")
	if err != nil || res != nil {
		t.Fatalf("account page: %v %v", err, res)
	}
	form := page.FormWith("client_id")
	if form == nil || form.Fields.Get("client_id") != clientID {
		t.Fatalf("no revoke form for %s on the account page:\n%s", clientID, page.Body)
	}
	page, _, err = b.Submit(form, nil, "", "")
	if err != nil || !strings.Contains(page.Body, "Access for Example Web App was revoked") {
		t.Fatalf("revoke: %v\n%v", err, page)
	}

	status, body := e.get(b, "/")
	if status != http.StatusOK || !strings.Contains(body, revokedMsg) {
		t.Fatalf("after the revocation the app answered %d:\n%s", status, body)
	}
	if !strings.Contains(body, `href="/login"`) {
		t.Error("the revoked page offers no way to sign in again")
	}
	if hasSessionCookie(b, e.url) {
		t.Error("the app did not clear its session cookie")
	}
	if got := e.tr.refreshes.Load(); got != 1 {
		t.Errorf("%d refresh attempts, want 1 (the one that found out)", got)
	}
	if n := e.audit(); n[family.EventRefused+":consent_withdrawn"] != 1 {
		t.Errorf("audit %v: want one refusal for consent_withdrawn", n)
	}
	// The message is shown once; then the app is simply signed out.
	_, body = e.get(b, "/")
	if strings.Contains(body, "revoked") || !strings.Contains(body, `href="/login"`) {
		t.Errorf("second visit after the revocation:\n%s", body)
	}
}

// TestSessionEndsWhenRefreshExpires: the refresh before expiry itself is
// refused (here: the refresh token expired idle); the app says so.
func TestSessionEndsWhenRefreshExpires(t *testing.T) {
	t.Parallel()
	e := start(t, options{client: func(c *operator.ClientSpec) { c.RefreshIdle = time.Hour }})
	b := e.signIn(testserver.Alice, testserver.AlicePW)
	e.ts.Clock.Advance(2 * time.Hour)
	status, body := e.get(b, "/")
	want := "Your sign-in expired (reason: expired_idle). Sign in again."
	if status != http.StatusOK || !strings.Contains(body, want) {
		t.Fatalf("got %d, want %q:\n%s", status, want, body)
	}
	if hasSessionCookie(b, e.url) {
		t.Error("the app did not clear its session cookie")
	}
}

// TestLogout: signing out revokes the refresh token at Latchkey.
func TestLogout(t *testing.T) {
	t.Parallel()
	e := start(t, options{})
	b := e.signIn(testserver.Alice, testserver.AlicePW)
	resp, err := b.Client.PostForm(e.url+"/logout", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "You are signed out") || hasSessionCookie(b, e.url) {
		t.Fatalf("after sign-out (%d):\n%s", resp.StatusCode, body)
	}
	rts := e.tr.refreshTokens()
	if len(rts) != 1 {
		t.Fatalf("%d refresh tokens", len(rts))
	}
	r := e.ts.Refresh(rts[0], clientID, clientSecret)
	if r.Status != http.StatusBadRequest || r.Str("error") != "invalid_grant" || r.Str("error_reason") != "revoked" {
		t.Errorf("the refresh token after sign-out: %d %v, want invalid_grant (revoked)", r.Status, r.Body)
	}
}

// TestTokensStayOnTheBackend walks through sign-in, a refresh and a
// revocation, and checks no token ever reached the browser (the cleanup of
// every test checks responses, logs and the store; this test also looks at
// the cookies the browser ended up with).
func TestTokensStayOnTheBackend(t *testing.T) {
	t.Parallel()
	e := start(t, options{})
	b := e.signIn(testserver.Alice, testserver.AlicePW)
	e.ts.Clock.Advance(e.ts.Config.AccessTokenTTL.D())
	e.get(b, "/")
	if err := operator.RevokeGrant(context.Background(), e.ts.Store, &family.Service{Store: e.ts.Store, Log: e.ts.Log, Now: e.ts.Clock.Now}, mustUser(t, e.ts, testserver.Alice), clientID, "test"); err != nil {
		t.Fatal(err)
	}
	e.get(b, "/")
	if got := len(e.tr.refreshTokens()); got != 2 {
		t.Fatalf("%d refresh tokens issued, want 2 (sign-in, refresh)", got)
	}
	u, _ := url.Parse(e.url)
	e.tr.mu.Lock()
	defer e.tr.mu.Unlock()
	for _, c := range b.Client.Jar.Cookies(u) {
		for _, tok := range e.tr.tokens {
			if strings.Contains(c.Value, tok[:24]) {
				t.Errorf("cookie %s holds a token", c.Name)
			}
		}
	}
	e.store.mu.Lock()
	defer e.store.mu.Unlock()
	if len(e.store.written) < 2 {
		t.Errorf("%d session writes, want the sign-in and the refresh", len(e.store.written))
	}
}

func mustUser(t *testing.T, ts *testserver.Server, name string) string {
	t.Helper()
	u, err := ts.Store.GetUserByUsername(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// TestCallbackChecks: a callback with the wrong state, or without the
// browser's login cookie, is refused before any code exchange.
func TestCallbackChecks(t *testing.T) {
	t.Parallel()
	e := start(t, options{})
	b := flow.NewBrowser(nil, e.ts.URL+"/authorize")
	_, res, err := b.Get(e.url + "/login")
	if err != nil || res == nil {
		t.Fatalf("/login did not redirect to Latchkey: %v", err)
	}
	q := res.Redirect.Query()
	for k, want := range map[string]string{"client_id": clientID, "redirect_uri": e.url + "/callback", "code_challenge_method": "S256", "response_type": "code"} {
		if q.Get(k) != want {
			t.Errorf("authorization request %s=%q, want %q", k, q.Get(k), want)
		}
	}
	if q.Get("state") == "" || q.Get("nonce") == "" || len(q.Get("code_challenge")) != 43 || !strings.Contains(q.Get("scope"), "offline_access") {
		t.Errorf("authorization request lacks state, nonce, an S256 challenge or offline_access: %v", q)
	}

	status, body := e.get(b, "/callback?code=x&state=wrong&iss="+url.QueryEscape(e.ts.URL))
	if status != http.StatusBadRequest || !strings.Contains(body, "did not match") {
		t.Errorf("wrong state: %d\n%s", status, body)
	}
	// The pending sign-in is spent: the right state no longer works either.
	status, body = e.get(b, "/callback?code=x&state="+url.QueryEscape(q.Get("state")))
	if status != http.StatusBadRequest || !strings.Contains(body, "expired or was not started here") {
		t.Errorf("replayed callback: %d\n%s", status, body)
	}
	// Another browser (no login cookie) cannot complete it.
	status, _ = e.get(flow.NewBrowser(nil, e.url), "/callback?code=x&state="+url.QueryEscape(q.Get("state")))
	if status != http.StatusBadRequest {
		t.Errorf("callback without the login cookie: %d", status)
	}
	// A response naming another issuer (mix-up) is refused too.
	_, res, _ = b.Get(e.url + "/login")
	st := res.Redirect.Query().Get("state")
	status, body = e.get(b, "/callback?code=x&state="+url.QueryEscape(st)+"&iss="+url.QueryEscape("https://evil.example"))
	if status != http.StatusBadRequest || !strings.Contains(body, "another server") {
		t.Errorf("wrong iss: %d\n%s", status, body)
	}
	if got := e.tr.exchanges.Load(); got != 0 {
		t.Errorf("%d code exchanges for refused callbacks, want 0", got)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	good := app.Config{Issuer: ts.URL, ClientID: clientID, ClientSecret: clientSecret, RedirectURL: "http://localhost:3000/callback", SessionKey: make([]byte, 32)}
	for name, edit := range map[string]func(*app.Config){
		"no secret":      func(c *app.Config) { c.ClientSecret = "" },
		"short key":      func(c *app.Config) { c.SessionKey = make([]byte, 16) },
		"relative URL":   func(c *app.Config) { c.RedirectURL = "/callback" },
		"no such issuer": func(c *app.Config) { c.Issuer = ts.URL + "/nowhere" },
	} {
		cfg := good
		edit(&cfg)
		if _, err := app.New(t.Context(), cfg); err == nil {
			t.Errorf("%s: New accepted the configuration", name)
		}
	}
	if _, err := app.New(t.Context(), good); err != nil {
		t.Errorf("good configuration: %v", err)
	}
}

func ExampleSessionEndedError_Message() {
	fmt.Println((&app.SessionEndedError{Reason: "consent_withdrawn"}).Message())
	fmt.Println((&app.SessionEndedError{Reason: "expired_absolute"}).Message())
	// Output:
	// Your access was revoked (reason: consent_withdrawn). Sign in again.
	// Your sign-in expired (reason: expired_absolute). Sign in again.
}
