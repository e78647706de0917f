package admin_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	vconfig "github.com/pb33f/libopenapi-validator/config"
	"go.yaml.in/yaml/v3"

	"github.com/latchkey-dev/latchkey/internal/admin"
	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/metrics"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/server"
	"github.com/latchkey-dev/latchkey/internal/store/sqlstore"
	"github.com/latchkey-dev/latchkey/internal/testdb"
	"github.com/latchkey-dev/latchkey/internal/testserver"
)

const token = "test-admin-token-0123456789abcdefghijklmnop"

// api drives a running admin API and validates every real response (and,
// unless told otherwise, the request) against the OpenAPI document with
// libopenapi-validator. It records which documented operations answered
// with a success, so the test can require that all of them did.
type api struct {
	t    *testing.T
	url  string
	v    validator.Validator
	ops  []operation
	mu   sync.Mutex
	done map[string]bool
}

type operation struct {
	id, method string
	path       *regexp.Regexp
}

// validatorFor loads openapi.yaml, checks the document itself is valid
// OpenAPI 3.1, and returns a validator with format assertions on.
func validatorFor(t *testing.T) validator.Validator {
	t.Helper()
	doc, err := libopenapi.NewDocument(admin.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(doc, vconfig.WithFormatAssertions())
	if len(errs) > 0 {
		t.Fatalf("openapi.yaml: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("openapi.yaml is not valid OpenAPI 3.1: %s: %s", e.Message, e.Reason)
		}
		t.FailNow()
	}
	return v
}

// operations lists (method, path template, operationId) from the document.
func operations(t *testing.T) []operation {
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(admin.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	var ops []operation
	for p, item := range doc.Paths {
		re := regexp.MustCompile("^" + regexp.MustCompile(`\\\{[a-z_]+\\\}`).ReplaceAllString(regexp.QuoteMeta(p), `[^/]+`) + "$")
		for m, op := range item {
			o, ok := op.(map[string]any)
			if !ok || m == "parameters" {
				continue
			}
			ops = append(ops, operation{id: o["operationId"].(string), method: strings.ToUpper(m), path: re})
		}
	}
	return ops
}

type startOpts struct {
	engine     string // "sqlite" or "postgres"
	noProfiles bool   // admin_pprof off
}

// start runs a Latchkey test server with metrics and an admin API next to
// it, sharing its store, family service and key manager, logging to the
// test server's captured (and secret-checked) log.
func start(t *testing.T, o startOpts) (*api, *testserver.Server, *metrics.Metrics) {
	t.Helper()
	m := metrics.New()
	var st *sqlstore.Store
	if o.engine == "postgres" {
		st = testdb.Postgres(t)
	} else {
		st = testdb.SQLite(t)
	}
	m.RegisterDB(st.DB(), st.Engine())
	ts := testserver.StartOn(t, st, testserver.WithServerOptions(func(so *server.Options) { so.Metrics = m }))
	m.RegisterLiveFamilies(ts.Store.CountLiveFamilies, ts.Clock.Now, time.Nanosecond)
	h := &admin.Handler{
		Store: ts.Store, Families: ts.Srv.Families(), Keys: ts.Srv.Keys(), KeyRetention: time.Hour,
		Log: ts.Log, Now: ts.Clock.Now, Token: token, RevokeOnPasswordChange: true,
		Metrics: m.Handler(), Ready: ts.Srv.Ready, Profiles: !o.noProfiles,
	}
	hs := httptest.NewServer(h.Handler())
	t.Cleanup(hs.Close)
	ts.Remember(token)
	a := &api{t: t, url: hs.URL, v: validatorFor(t), ops: operations(t), done: map[string]bool{}}
	return a, ts, m
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("bad JSON %q: %v", r.body, err)
	}
}

func (r resp) problem(t *testing.T) admin.Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("error with Content-Type %q: %s", ct, r.body)
	}
	var p admin.Problem
	r.json(t, &p)
	return p
}

type callOpt int

const (
	noToken         callOpt = iota + 1 // send no Authorization header
	invalidRequest                     // the request breaks the schema on purpose: validate the response only
	rawBody                            // body is a []byte sent as is
	contentTypeText                    // send the body as text/plain
)

// call sends a request and validates the response (and request) against
// the OpenAPI document.
func (a *api) call(method, path string, body any, opts ...callOpt) resp {
	a.t.Helper()
	var b []byte
	switch {
	case body == nil:
	case slices.Contains(opts, rawBody):
		b = body.([]byte)
	default:
		var err error
		if b, err = json.Marshal(body); err != nil {
			a.t.Fatal(err)
		}
	}
	mk := func() *http.Request {
		req, err := http.NewRequest(method, a.url+path, bytes.NewReader(b))
		if err != nil {
			a.t.Fatal(err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
			if slices.Contains(opts, contentTypeText) {
				req.Header.Set("Content-Type", "text/plain")
			}
		} else {
			req.Body = http.NoBody
		}
		if !slices.Contains(opts, noToken) {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return req
	}
	hr, err := http.DefaultClient.Do(mk())
	if err != nil {
		a.t.Fatal(err)
	}
	defer hr.Body.Close()
	rb, _ := io.ReadAll(hr.Body)
	out := resp{status: hr.StatusCode, header: hr.Header, body: rb}
	if hr.Header.Get("X-Request-Id") == "" {
		a.t.Errorf("%s %s: no X-Request-Id", method, path)
	}

	// Validate against the document: a fresh request (its body re-read)
	// and the response with its body restored.
	vreq := mk()
	hr.Body = io.NopCloser(bytes.NewReader(rb))
	var (
		ok   bool
		errs []*verrors
	)
	if slices.Contains(opts, invalidRequest) || slices.Contains(opts, noToken) {
		ok, errs = wrap(a.v.ValidateHttpResponse(vreq, hr))
	} else {
		ok, errs = wrap(a.v.ValidateHttpRequestResponse(vreq, hr))
	}
	if !ok {
		for _, e := range errs {
			a.t.Errorf("%s %s → %d does not match openapi.yaml: %s", method, path, out.status, e)
		}
		a.t.Fatalf("body: %s", rb)
	}
	if out.status < 300 {
		for _, op := range a.ops {
			if op.method == method && op.path.MatchString(strings.SplitN(path, "?", 2)[0]) {
				a.mu.Lock()
				a.done[op.id] = true
				a.mu.Unlock()
			}
		}
	}
	return out
}

// want checks the status.
func (r resp) want(t *testing.T, status int) resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("got %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

// everyOperationCovered fails unless every documented operation answered
// with a success and was validated.
func (a *api) everyOperationCovered() {
	a.t.Helper()
	for _, op := range a.ops {
		if !a.done[op.id] {
			a.t.Errorf("operation %s (%s) was never exercised successfully", op.id, op.method)
		}
	}
}

func TestAdminAPI(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			testAdminAPI(t, engine)
		})
	}
}

func testAdminAPI(t *testing.T, engine string) {
	a, ts, _ := start(t, startOpts{engine: engine})

	// Operations endpoints.
	a.call("GET", "/healthz", nil, noToken).want(t, 200)
	a.call("GET", "/readyz", nil, noToken).want(t, 200)
	a.call("GET", "/openapi.yaml", nil, noToken).want(t, 200)
	var doc map[string]any
	a.call("GET", "/openapi.json", nil, noToken).want(t, 200).json(t, &doc)
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi.json: openapi = %v", doc["openapi"])
	}

	// Runtime profiles (admin_pprof; TestAdminProfiles has the errors).
	a.call("GET", "/debug/pprof/goroutine", nil, noToken).want(t, 401)
	a.call("GET", "/debug/pprof/heap", nil).want(t, 200)
	recording.Lock() // the runtime records one CPU profile and one trace at a time
	a.call("GET", "/debug/pprof/profile?seconds=1", nil).want(t, 200)
	a.call("GET", "/debug/pprof/trace?seconds=1", nil).want(t, 200)
	recording.Unlock()

	// Authentication.
	r := a.call("GET", "/v1/clients", nil, noToken).want(t, 401)
	if p := r.problem(t); p.Type != admin.ProblemTypePrefix+"unauthorized" || p.Status != 401 || p.RequestID == "" {
		t.Errorf("401 problem: %+v", p)
	}
	if r.header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	a.call("GET", "/metrics", nil, noToken).want(t, 401)
	req, _ := http.NewRequest("GET", a.url+"/v1/clients", nil)
	req.Header.Set("Authorization", "Bearer "+token+"x")
	if hr, err := http.DefaultClient.Do(req); err != nil || hr.StatusCode != 401 {
		t.Fatalf("a wrong token: %v %v", hr.StatusCode, err)
	}

	// Clients.
	var cl admin.ClientList
	a.call("GET", "/v1/clients", nil).want(t, 200).json(t, &cl)
	if len(cl.Clients) != 4 {
		t.Fatalf("seeded clients: %d", len(cl.Clients))
	}
	var created operator.ClientView
	r = a.call("POST", "/v1/clients", admin.ClientCreate{ClientID: "api-app", Name: "API App", RedirectURIs: []string{"https://app.example.com/cb"},
		RefreshIdle: "7d", RefreshAbsolute: "30d", ReuseReportOnly: true}).want(t, 201)
	r.json(t, &created)
	ts.Remember(created.ClientSecret)
	if created.ClientSecret == "" || created.RefreshIdle != "168h0m0s" || !created.ReuseReportOnly || r.header.Get("Location") != "/v1/clients/api-app" {
		t.Errorf("created %+v (Location %q)", created, r.header.Get("Location"))
	}
	if p := a.call("POST", "/v1/clients", admin.ClientCreate{ClientID: "api-app", RedirectURIs: []string{"https://x.example/cb"}}).want(t, 409).problem(t); !strings.Contains(p.Detail, "already exists") {
		t.Errorf("duplicate: %+v", p)
	}
	p := a.call("POST", "/v1/clients", admin.ClientCreate{ClientID: "bad id!", RedirectURIs: []string{"http://evil.example/cb"}}).want(t, 400).problem(t)
	if len(p.Errors) != 2 || p.Type != admin.ProblemTypePrefix+"invalid-input" {
		t.Errorf("invalid client: want both problems listed: %+v", p)
	}
	a.call("POST", "/v1/clients", map[string]any{"client_id": "x", "redirect_uris": []string{"https://x.example/cb"}, "secrett": "typo"}, invalidRequest).want(t, 400)
	a.call("POST", "/v1/clients", []byte(`{"client_id":"x"}{}`), rawBody, invalidRequest).want(t, 400)
	a.call("POST", "/v1/clients", []byte(`{"client_id":"x"}`), rawBody, contentTypeText, invalidRequest).want(t, 415)
	big := []byte(`{"client_id":"x","name":"` + strings.Repeat("a", admin.MaxBodyBytes) + `"}`)
	a.call("POST", "/v1/clients", big, rawBody, invalidRequest).want(t, 413)
	a.call("POST", "/v1/clients", admin.ClientCreate{ClientID: "y", RedirectURIs: []string{"https://y.example/cb"}, RefreshIdle: "soon"}).want(t, 400)

	var got operator.ClientView
	a.call("GET", "/v1/clients/api-app", nil).want(t, 200).json(t, &got)
	if got.ClientSecret != "" || got.Name != "API App" {
		t.Errorf("get client: %+v", got)
	}
	a.call("GET", "/v1/clients/nope", nil).want(t, 404)
	yes, idle := true, "48h"
	a.call("PATCH", "/v1/clients/api-app", admin.ClientUpdate{RequireMFA: &yes, RefreshIdle: &idle}).want(t, 200).json(t, &got)
	if !got.RequireMFA || got.PolicyVersion != 2 || got.RefreshIdle != "48h0m0s" {
		t.Errorf("updated: %+v", got)
	}
	tooLong := "90d"
	a.call("PATCH", "/v1/clients/api-app", admin.ClientUpdate{RefreshIdle: &tooLong}).want(t, 400)

	// ID token algorithm: one the server has keys for (signing_alg ES256
	// and RS256, by default), or none for signing_alg.
	var rp operator.ClientView
	a.call("POST", "/v1/clients", admin.ClientCreate{ClientID: "rs-rp", RedirectURIs: []string{"https://rp.example/cb"}, Public: true,
		IDTokenAlg: "RS256"}).want(t, 201).json(t, &rp)
	if rp.IDTokenAlg != "RS256" {
		t.Errorf("created with RS256 ID tokens: %+v", rp)
	}
	p = a.call("POST", "/v1/clients", admin.ClientCreate{ClientID: "ed-rp", RedirectURIs: []string{"https://rp.example/cb"}, Public: true,
		IDTokenAlg: "EdDSA"}).want(t, 400).problem(t)
	if !strings.Contains(p.Detail, "no EdDSA signing keys") || p.Type != admin.ProblemTypePrefix+"invalid-input" {
		t.Errorf("an algorithm without keys: %+v", p)
	}
	a.call("POST", "/v1/clients", map[string]any{"client_id": "hs-rp", "redirect_uris": []string{"https://rp.example/cb"},
		"id_token_signed_response_alg": "HS256"}, invalidRequest).want(t, 400)
	es, none, ed := "ES256", "", "EdDSA"
	a.call("PATCH", "/v1/clients/rs-rp", admin.ClientUpdate{IDTokenAlg: &es}).want(t, 200).json(t, &rp)
	if rp.IDTokenAlg != "ES256" {
		t.Errorf("updated to ES256: %+v", rp)
	}
	a.call("PATCH", "/v1/clients/rs-rp", admin.ClientUpdate{IDTokenAlg: &ed}).want(t, 400)
	back := a.call("PATCH", "/v1/clients/rs-rp", admin.ClientUpdate{IDTokenAlg: &none}).want(t, 200)
	if strings.Contains(string(back.body), "id_token_signed_response_alg") {
		t.Errorf("back to signing_alg: %s", back.body)
	}
	a.call("DELETE", "/v1/clients/rs-rp", nil).want(t, 204)
	empty := []string{}
	a.call("PATCH", "/v1/clients/api-app", admin.ClientUpdate{RedirectURIs: &empty}, invalidRequest).want(t, 400)
	a.call("PATCH", "/v1/clients/nope", admin.ClientUpdate{Name: &idle}).want(t, 404)

	// Users.
	var ul admin.UserList
	a.call("GET", "/v1/users", nil).want(t, 200).json(t, &ul)
	if len(ul.Users) != 2 {
		t.Fatalf("seeded users: %+v", ul)
	}
	const carolPW = "carol's rather long password"
	ts.Remember(carolPW)
	var carol operator.UserView
	a.call("POST", "/v1/users", admin.UserCreate{Username: "carol", Password: carolPW, Email: "carol@example.com"}).want(t, 201).json(t, &carol)
	if carol.Username != "carol" || carol.ID == "" || carol.Disabled {
		t.Errorf("created user %+v", carol)
	}
	a.call("POST", "/v1/users", admin.UserCreate{Username: "carol", Password: carolPW}).want(t, 409)
	a.call("POST", "/v1/users", admin.UserCreate{Username: "dave", Password: "short"}, invalidRequest).want(t, 400)
	a.call("GET", "/v1/users/carol", nil).want(t, 200)
	a.call("GET", "/v1/users/nobody", nil).want(t, 404)

	// Families and grants come from a real sign-in and refresh.
	web := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "offline_access")
	tok := ts.Login(web, testserver.Alice, testserver.AlicePW)
	rot := ts.Refresh(tok.RefreshToken, testserver.WebClient, testserver.WebSecret)
	if rot.Status != 200 {
		t.Fatalf("refresh: %+v", rot)
	}
	var gl admin.GrantList
	a.call("GET", "/v1/users/Alice/grants", nil).want(t, 200).json(t, &gl)
	if len(gl.Grants) != 1 || gl.Grants[0].ClientID != testserver.WebClient || gl.Grants[0].LiveFamilies != 1 {
		t.Fatalf("grants: %+v", gl)
	}
	var fl admin.FamilyList
	a.call("GET", "/v1/families?username=Alice&live=true", nil).want(t, 200).json(t, &fl)
	if len(fl.Families) != 1 || fl.Families[0].State != operator.FamilyLive || fl.Families[0].Generation != 2 {
		t.Fatalf("families: %+v", fl)
	}
	famID := fl.Families[0].ID
	a.call("GET", "/v1/families", nil, invalidRequest).want(t, 400)
	a.call("GET", "/v1/families?client_id=web-app&bogus=1", nil, invalidRequest).want(t, 400)

	var rev admin.FamilyRevoked
	a.call("POST", "/v1/families/"+famID+"/revoke", nil).want(t, 200).json(t, &rev)
	if !rev.Revoked {
		t.Error("first revoke: revoked=false")
	}
	a.call("POST", "/v1/families/"+famID+"/revoke", nil).want(t, 200).json(t, &rev)
	if rev.Revoked {
		t.Error("second revoke: revoked=true")
	}
	a.call("POST", "/v1/families/nope/revoke", nil).want(t, 404)
	testserver.WantError(t, ts.Refresh(rot.Str("refresh_token"), testserver.WebClient, testserver.WebSecret), 400, "invalid_grant")
	a.call("GET", "/v1/families?client_id=web-app", nil).want(t, 200).json(t, &fl)
	if len(fl.Families) != 1 || fl.Families[0].State != operator.FamilyRevoked || fl.Families[0].Reason != "operator_revoked" {
		t.Fatalf("after revoke: %+v", fl)
	}

	ts.Login(web, testserver.Alice, testserver.AlicePW)
	var ended admin.Ended
	a.call("POST", "/v1/families/revoke", admin.FamiliesRevoke{Username: "Alice", ClientID: testserver.WebClient}).want(t, 200).json(t, &ended)
	if ended.FamiliesEnded != 1 {
		t.Errorf("revoke by user and client: %+v", ended)
	}
	ts.Login(web, testserver.Alice, testserver.AlicePW)
	a.call("POST", "/v1/families/revoke", admin.FamiliesRevoke{ClientID: testserver.WebClient}).want(t, 200).json(t, &ended)
	if ended.FamiliesEnded != 1 {
		t.Errorf("revoke by client: %+v", ended)
	}
	a.call("POST", "/v1/families/revoke", admin.FamiliesRevoke{}, invalidRequest).want(t, 400)
	a.call("POST", "/v1/families/revoke", admin.FamiliesRevoke{Username: "nobody"}).want(t, 404)

	ts.Login(web, testserver.Alice, testserver.AlicePW)
	a.call("DELETE", "/v1/users/Alice/grants/"+testserver.WebClient, nil).want(t, 204)
	a.call("GET", "/v1/users/Alice/grants", nil).want(t, 200).json(t, &gl)
	if len(gl.Grants) != 0 {
		t.Errorf("grants after revoke: %+v", gl)
	}

	const bobPW2 = "Bob's brand new password"
	ts.Remember(bobPW2)
	ts.Login(web, testserver.Bob, testserver.BobPW)
	a.call("POST", "/v1/users/Bob/password", admin.PasswordChange{Password: bobPW2}).want(t, 200).json(t, &ended)
	if ended.FamiliesEnded != 1 {
		t.Errorf("set password: %+v", ended)
	}
	a.call("POST", "/v1/users/Bob/password", admin.PasswordChange{Password: "x"}, invalidRequest).want(t, 400)
	a.call("POST", "/v1/users/Bob/revoke-sessions", nil).want(t, 200)
	var bob operator.UserView
	a.call("POST", "/v1/users/Bob/disable", nil).want(t, 200).json(t, &bob)
	if !bob.Disabled {
		t.Error("disable: not disabled")
	}
	a.call("POST", "/v1/users/Bob/enable", nil).want(t, 200).json(t, &bob)
	if bob.Disabled {
		t.Error("enable: still disabled")
	}

	// Audit.
	var al admin.AuditList
	a.call("GET", "/v1/audit?username=Alice&limit=5", nil).want(t, 200).json(t, &al)
	if len(al.Events) != 5 || al.Events[0].ID <= al.Events[4].ID {
		t.Fatalf("audit: %+v", al)
	}
	a.call("GET", "/v1/audit?client_id=web-app", nil).want(t, 200)
	a.call("GET", "/v1/audit?limit=0", nil, invalidRequest).want(t, 400)
	a.call("GET", "/v1/audit?limit=10001", nil, invalidRequest).want(t, 400)

	// Keys.
	// Keys: signing_alg ES256 and RS256 (always), one active key each.
	var kl admin.KeyList
	a.call("GET", "/v1/keys", nil).want(t, 200).json(t, &kl)
	active := map[string]string{}
	for _, k := range kl.Keys {
		if k.State == "active" {
			active[k.Alg] = k.ID
		}
	}
	if len(active) != 2 || active["ES256"] == "" || active["RS256"] == "" {
		t.Fatalf("keys: active keys %v: %+v", active, kl)
	}
	if p := a.call("POST", "/v1/keys/rotate", admin.KeysRotate{}).want(t, 409).problem(t); p.Type != admin.ProblemTypePrefix+"keys-not-ready" {
		t.Errorf("rotate too early: %+v", p)
	}
	var rr keys.RotateResult
	a.call("POST", "/v1/keys/rotate", admin.KeysRotate{Force: true}).want(t, 200).json(t, &rr)
	if rr.Activated == "" || !slices.Contains(rr.Retired, active["ES256"]) || !slices.Contains(rr.Retired, active["RS256"]) || len(rr.Algorithms) != 2 {
		t.Errorf("rotate: %+v", rr)
	}
	for _, r := range rr.Algorithms {
		if r.Activated == "" || !slices.Equal(r.Retired, []string{active[r.Alg]}) || (r.Alg == "ES256" && r.Activated != rr.Activated) {
			t.Errorf("rotate %s: %+v", r.Alg, r)
		}
	}

	a.call("DELETE", "/v1/clients/api-app", nil).want(t, 204)
	a.call("DELETE", "/v1/clients/api-app", nil).want(t, 404)
	// An unknown path (not in the document, so not validated) is a problem too.
	if hr, err := http.Get(a.url + "/v1/nothing-here"); err != nil || hr.StatusCode != 404 || hr.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("unknown path: %v %v", hr, err)
	}

	// Metrics, on the admin listener.
	mr := a.call("GET", "/metrics", nil).want(t, 200)
	for _, want := range []string{
		`latchkey_token_requests_total{grant_type="refresh_token",outcome="success"} 1`,
		`latchkey_token_requests_total{grant_type="refresh_token",outcome="invalid_grant"} 1`,
		`latchkey_refresh_refusals_total{reason="operator_revoked"} 1`,
		`latchkey_family_ends_total{reason="operator_revoked"} 3`,
		`latchkey_family_ends_total{reason="consent_withdrawn"} 1`,
		`latchkey_family_ends_total{reason="credentials_changed"} 1`,
		`latchkey_live_families 0`,
		`go_sql_open_connections`,
		`latchkey_http_request_duration_seconds_bucket{method="POST",route="/token",status="200"`,
	} {
		if !strings.Contains(string(mr.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// The access log is JSON with request ids, for admin requests too.
	var sawAdmin bool
	for _, line := range strings.Split(strings.TrimSpace(ts.Logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] == "http" && rec["path"] == "/v1/users" {
			sawAdmin = rec["request_id"] != ""
		}
	}
	if !sawAdmin {
		t.Error("no access log line with a request id for the admin API")
	}
	a.everyOperationCovered()
}

// verrors adapts the validator's errors for printing.
type verrors struct{ msg string }

func (v *verrors) String() string { return v.msg }

func wrap[E interface{ Error() string }](ok bool, errs []E) (bool, []*verrors) {
	out := make([]*verrors, 0, len(errs))
	for _, e := range errs {
		out = append(out, &verrors{e.Error()})
	}
	return ok, out
}

// TestValidatorCatchesDrift makes sure the validation above has teeth: a
// response with an undocumented field, or missing a required one, or a
// wrong status, fails it.
func TestValidatorCatchesDrift(t *testing.T) {
	v := validatorFor(t)
	for name, tc := range map[string]struct {
		status int
		body   string
	}{
		"extra field":      {200, `{"id":"1","username":"a","disabled":false,"mfa":false,"created_at":"2026-01-01T00:00:00Z","password_hash":"x"}`},
		"missing field":    {200, `{"id":"1","username":"a","mfa":false,"created_at":"2026-01-01T00:00:00Z"}`},
		"bad time":         {200, `{"id":"1","username":"a","disabled":false,"mfa":false,"created_at":"yesterday"}`},
		"undocumented 418": {418, `{"type":"urn:latchkey:problem:x","title":"t","status":418}`},
	} {
		req, _ := http.NewRequest("GET", "http://127.0.0.1:9090/v1/users/alice", nil)
		req.Header.Set("Authorization", "Bearer x")
		hr := &http.Response{StatusCode: tc.status, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(tc.body)), Request: req}
		if tc.status >= 400 {
			hr.Header.Set("Content-Type", "application/problem+json")
		}
		if ok, _ := v.ValidateHttpResponse(req, hr); ok {
			t.Errorf("%s: the validator accepted a response that breaks the document", name)
		}
	}
}
