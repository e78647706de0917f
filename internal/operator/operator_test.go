package operator_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/secret"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/testdb"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestValidateRedirectURI(t *testing.T) {
	tests := []struct {
		uri  string
		want string // error substring; "" = valid
	}{
		{"https://app.example.com/callback", ""},
		{"https://app.example.com/callback?tenant=1", ""},
		{"https://app.example.com:8443/cb", ""},
		{"http://localhost/cb", ""},
		{"http://localhost:3000/callback", ""},
		{"http://127.0.0.1:49152/cb", ""},
		{"http://[::1]:8080/cb", ""},
		{"http://app.localhost/cb", ""},
		{"HTTP://localhost/cb", ""}, // the scheme is case-insensitive
		{"com.example.app:/oauth2redirect", ""},
		{"myapp://callback", ""},
		{"http://app.example.com/callback", "must use https"},
		{"http://192.168.1.10/cb", "must use https"},
		{"http://127.0.0.2/cb", "must use https"},
		{"http://localhost.evil.example/cb", "must use https"},
		{"http://localhost@evil.example/cb", "user information"},
		{"http://evil.example/localhost", "must use https"},
		{"https://user:pw@app.example.com/cb", "user information"},
		{"http://LOCALHOST:3000/cb", ""}, // host names are case-insensitive
		{"http://localhost:99999/cb", "invalid port"},
		{"mailto:someone@example.com", "forbidden scheme"},
		{"https://app.example.com/cb#frag", "must not contain a fragment"},
		{"https://app.example.com/cb#", "must not contain a fragment"},
		{"myapp://cb#x", "must not contain a fragment"},
		{"javascript:alert(1)", "forbidden scheme"},
		{"JavaScript:alert(document.cookie)", "forbidden scheme"},
		{"javascript://%0aalert(1)", "redirect URI"}, // refused (unparsable host)
		{"data:text/html,<script>alert(1)</script>", "forbidden scheme"},
		{"file:///etc/passwd", "forbidden scheme"},
		{"vbscript:msgbox", "forbidden scheme"},
		{"https:///no-host", "has no host"},
		{"https:", "has no host"},
		{"https://:443/cb", "has no host"},
		{"/relative/callback", "must be an absolute URI"},
		{"app.example.com/cb", "must be an absolute URI"},
		{"", "must be an absolute URI"},
		{" https://app.example.com/cb", "must be an absolute URI"},
		{"https://app.example.com/" + strings.Repeat("a", 2048), "must be an absolute URI"},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			err := operator.ValidateRedirectURI(tt.uri)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestValidateClientID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"web", true},
		{"my-app_v2.prod~1", true},
		{"A1", true},
		{strings.Repeat("a", 128), true},
		{"", false},
		{strings.Repeat("a", 129), false},
		{"has space", false},
		{"colon:id", false},
		{"slash/id", false},
		{"percent%20", false},
		{"naïve", false},
		{"ｗｅｂ", false}, // full-width letters
		{"tab\t", false},
		{"quote\"", false},
	}
	for _, tt := range tests {
		err := operator.ValidateClientID(tt.id)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateClientID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
		}
	}
}

func TestValidateUsernameAndPassword(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{{"alice", true}, {"alice@example.com", true}, {"Zoë", true}, {strings.Repeat("u", 64), true},
		{"", false}, {strings.Repeat("u", 65), false}, {"al ice", false}, {"al\tice", false}, {"nul\x00", false}, {"bell\a", false}} {
		if err := operator.ValidateUsername(tt.name); (err == nil) != tt.ok {
			t.Errorf("ValidateUsername(%q) = %v", tt.name, err)
		}
	}
	for _, tt := range []struct {
		pw string
		ok bool
	}{{"12345678", true}, {"ééééééé", false}, {"éééééééé", true}, {"1234567", false}, {"", false},
		{strings.Repeat("p", secret.MaxSecret), true}, {strings.Repeat("p", secret.MaxSecret+1), false}} {
		if err := operator.ValidatePassword(tt.pw); (err == nil) != tt.ok {
			t.Errorf("ValidatePassword(%.20q) = %v", tt.pw, err)
		}
	}
}

func TestCreateClient(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)

	// Confidential, secret generated: returned once, stored hashed.
	v, err := operator.CreateClient(ctx, st, operator.ClientSpec{ID: "web", Name: "Web", RedirectURIs: []string{"https://app.example.com/cb"}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.ClientSecret) != 43 {
		t.Fatalf("generated secret %q", v.ClientSecret)
	}
	if v.ClientID != "web" || v.Name != "Web" || v.Public || v.AuthMethod != "client_secret_basic" || v.PolicyVersion != 1 ||
		v.RequireMFA || !slices.Equal(v.Scopes, operator.DefaultScopes) ||
		!slices.Equal(v.GrantTypes, []string{"authorization_code", "refresh_token"}) || v.CreatedAt != "2026-03-01T12:00:00Z" {
		t.Errorf("view %+v", v)
	}
	c, err := st.GetClient(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.SecretHash, "sha256$") || strings.Contains(c.SecretHash, v.ClientSecret) {
		t.Errorf("stored hash %q", c.SecretHash)
	}
	if !secret.VerifyClientSecret(c.SecretHash, v.ClientSecret) {
		t.Error("the printed secret does not verify against the stored hash")
	}

	// Secret given: never echoed.
	v, err = operator.CreateClient(ctx, st, operator.ClientSpec{ID: "given", Secret: "short-pw1", RedirectURIs: []string{"https://a.example/cb"}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if v.ClientSecret != "" {
		t.Errorf("a given secret was echoed: %q", v.ClientSecret)
	}
	c, _ = st.GetClient(ctx, "given")
	if !strings.HasPrefix(c.SecretHash, "$argon2id$") || !secret.VerifyClientSecret(c.SecretHash, "short-pw1") {
		t.Errorf("short given secret stored as %q", c.SecretHash)
	}

	// Public: no secret at all.
	v, err = operator.CreateClient(ctx, st, operator.ClientSpec{ID: "spa", Public: true, RedirectURIs: []string{"http://localhost:3000/cb", "myapp://cb"},
		Scopes: []string{"openid"}, RefreshIdle: time.Hour, RefreshAbsolute: 48 * time.Hour, ReuseReportOnly: true}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if v.ClientSecret != "" || !v.Public || v.AuthMethod != "none" || !slices.Equal(v.Scopes, []string{"openid"}) ||
		v.RefreshIdle != "1h0m0s" || v.RefreshAbsolute != "48h0m0s" || !v.ReuseReportOnly || len(v.RedirectURIs) != 2 {
		t.Errorf("public view %+v", v)
	}
	if c, _ := st.GetClient(ctx, "spa"); c.SecretHash != "" {
		t.Errorf("public client has a secret hash %q", c.SecretHash)
	}

	// Duplicate id.
	_, err = operator.CreateClient(ctx, st, operator.ClientSpec{ID: "web", RedirectURIs: []string{"https://b.example/cb"}}, t0)
	if err == nil || !strings.Contains(err.Error(), `a client with id "web" already exists`) {
		t.Errorf("duplicate: %v", err)
	}
	if c, _ := st.GetClient(ctx, "web"); c.RedirectURIs[0] != "https://app.example.com/cb" {
		t.Error("the duplicate overwrote the original")
	}
}

func TestCreateClientValidation(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)
	good := []string{"https://app.example.com/cb"}
	tests := []struct {
		name string
		spec operator.ClientSpec
		want []string
	}{
		{"public with secret", operator.ClientSpec{ID: "a", Public: true, Secret: "0123456789", RedirectURIs: good}, []string{"a public client has no secret"}},
		{"no redirect", operator.ClientSpec{ID: "a"}, []string{"at least one --redirect-uri is required"}},
		{"bad id", operator.ClientSpec{ID: "a b", RedirectURIs: good}, []string{"may contain only"}},
		{"empty id", operator.ClientSpec{RedirectURIs: good}, []string{"1 to 128 characters"}},
		{"bad redirect", operator.ClientSpec{ID: "a", RedirectURIs: []string{"http://evil.example/cb"}}, []string{"must use https"}},
		{"empty scopes", operator.ClientSpec{ID: "a", RedirectURIs: good, Scopes: []string{}}, []string{"at least one scope is required"}},
		{"bad scope", operator.ClientSpec{ID: "a", RedirectURIs: good, Scopes: []string{`sc"ope`}}, []string{"invalid scope"}},
		{"idle over absolute", operator.ClientSpec{ID: "a", RedirectURIs: good, RefreshIdle: 2 * time.Hour, RefreshAbsolute: time.Hour}, []string{"--refresh-idle must not exceed --refresh-absolute"}},
		{"negative lifetime", operator.ClientSpec{ID: "a", RedirectURIs: good, RefreshIdle: -time.Hour}, []string{"must not be negative"}},
		{"long name", operator.ClientSpec{ID: "a", RedirectURIs: good, Name: strings.Repeat("n", 201)}, []string{"name must be at most 200"}},
		{"short secret", operator.ClientSpec{ID: "a", RedirectURIs: good, Secret: "1234567"}, []string{"at least 8"}},
		{"several problems at once", operator.ClientSpec{ID: "bad id", Public: true, Secret: "x", RedirectURIs: []string{"javascript:alert(1)"}},
			[]string{"may contain only", "a public client has no secret", "forbidden scheme"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := operator.CreateClient(ctx, st, tt.spec, t0)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if cs, _ := st.ListClients(ctx); len(cs) != 0 {
		t.Errorf("invalid specs created %d clients", len(cs))
	}
}

func TestUpdateClientPolicyVersion(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)
	if _, err := operator.CreateClient(ctx, st, operator.ClientSpec{ID: "web", RedirectURIs: []string{"https://a.example/cb"}}, t0); err != nil {
		t.Fatal(err)
	}
	yes, no := true, false
	name := "Renamed"
	idle := time.Hour
	steps := []struct {
		name    string
		u       operator.ClientUpdate
		version int
		mfa     bool
	}{
		{"name only", operator.ClientUpdate{Name: &name}, 1, false},
		{"require MFA", operator.ClientUpdate{RequireMFA: &yes}, 2, true},
		{"require MFA again (no change)", operator.ClientUpdate{RequireMFA: &yes}, 2, true},
		{"other fields", operator.ClientUpdate{RefreshIdle: &idle, ReuseReportOnly: &yes, Scopes: []string{"openid"}}, 2, true},
		{"drop MFA", operator.ClientUpdate{RequireMFA: &no}, 3, false},
		{"drop MFA again", operator.ClientUpdate{RequireMFA: &no}, 3, false},
		{"nothing", operator.ClientUpdate{}, 3, false},
	}
	for _, s := range steps {
		v, err := operator.UpdateClient(ctx, st, "web", s.u, t0.Add(time.Hour))
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if v.PolicyVersion != s.version || v.RequireMFA != s.mfa {
			t.Errorf("%s: policy_version %d require_mfa %v, want %d %v", s.name, v.PolicyVersion, v.RequireMFA, s.version, s.mfa)
		}
	}
	c, _ := st.GetClient(ctx, "web")
	if c.Name != "Renamed" || c.RefreshIdle != time.Hour || !c.ReuseReportOnly || !slices.Equal(c.Scopes, []string{"openid"}) ||
		!c.UpdatedAt.Equal(t0.Add(time.Hour)) || !c.CreatedAt.Equal(t0) || c.PolicyVersion != 3 {
		t.Errorf("stored client %+v", c)
	}
	if !slices.Equal(c.RedirectURIs, []string{"https://a.example/cb"}) {
		t.Errorf("redirect URIs changed: %v", c.RedirectURIs)
	}
}

func TestUpdateClientErrors(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)
	if _, err := operator.CreateClient(ctx, st, operator.ClientSpec{ID: "web", RedirectURIs: []string{"https://a.example/cb"}}, t0); err != nil {
		t.Fatal(err)
	}
	abs := time.Hour
	idle := 2 * time.Hour
	tests := []struct {
		name, id string
		u        operator.ClientUpdate
		want     string
	}{
		{"unknown", "nope", operator.ClientUpdate{}, `no client with id "nope"`},
		{"bad redirect", "web", operator.ClientUpdate{RedirectURIs: []string{"http://evil.example/"}}, "must use https"},
		{"bad scopes", "web", operator.ClientUpdate{Scopes: []string{}}, "at least one scope"},
		{"idle over absolute", "web", operator.ClientUpdate{RefreshIdle: &idle, RefreshAbsolute: &abs}, "must not exceed"},
	}
	for _, tt := range tests {
		if _, err := operator.UpdateClient(ctx, st, tt.id, tt.u, t0); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
	c, _ := st.GetClient(ctx, "web")
	if c.RefreshIdle != 0 || c.RefreshAbsolute != 0 || len(c.Scopes) != 4 {
		t.Errorf("a refused update changed the client: %+v", c)
	}
}

// A client's ID token algorithm: one Latchkey signs with and the server
// has keys for, or "" (signing_alg); anything else is refused with a clear
// error on create and update, changing nothing.
func TestClientIDTokenAlg(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)
	server := []string{"RS256", "ES256"} // signing_alg ES256, no id_token_algs
	good := []string{"https://app.example.com/cb"}
	for _, tt := range []struct{ alg, want string }{
		{"HS256", `ID token algorithm "HS256" must be RS256, ES256 or EdDSA`},
		{"none", `ID token algorithm "none" must be`},
		{"rs256", `ID token algorithm "rs256" must be`},
		{"EdDSA", "the server has no EdDSA signing keys (only RS256, ES256); add it to id_token_algs"},
	} {
		_, err := operator.CreateClient(ctx, st, operator.ClientSpec{ID: "a", RedirectURIs: good, IDTokenAlg: tt.alg, KeyAlgs: server}, t0)
		if !errors.Is(err, operator.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("create with %q: %v, want %q", tt.alg, err, tt.want)
		}
	}
	// Without the server's algorithms nothing but the default is accepted.
	if _, err := operator.CreateClient(ctx, st, operator.ClientSpec{ID: "a", RedirectURIs: good, IDTokenAlg: "RS256"}, t0); err == nil {
		t.Error("accepted an algorithm without knowing the server's")
	}
	if cs, _ := st.ListClients(ctx); len(cs) != 0 {
		t.Fatalf("refused specs created %d clients", len(cs))
	}

	v, err := operator.CreateClient(ctx, st, operator.ClientSpec{ID: "rp", RedirectURIs: good, IDTokenAlg: "RS256", KeyAlgs: server}, t0)
	if err != nil || v.IDTokenAlg != "RS256" {
		t.Fatalf("create with RS256: %+v %v", v, err)
	}
	v, err = operator.CreateClient(ctx, st, operator.ClientSpec{ID: "plain", RedirectURIs: good, KeyAlgs: server}, t0)
	if err != nil || v.IDTokenAlg != "" {
		t.Fatalf("create without: %+v %v", v, err)
	}
	alg := func(s string) *string { return &s }
	for _, tt := range []struct {
		u    operator.ClientUpdate
		want string // the stored algorithm afterwards
		err  string
	}{
		{operator.ClientUpdate{IDTokenAlg: alg("ES256"), KeyAlgs: server}, "ES256", ""},
		{operator.ClientUpdate{IDTokenAlg: alg("EdDSA"), KeyAlgs: server}, "ES256", "no EdDSA signing keys"},
		{operator.ClientUpdate{IDTokenAlg: alg("PS256"), KeyAlgs: server}, "ES256", `"PS256" must be RS256, ES256 or EdDSA`},
		{operator.ClientUpdate{IDTokenAlg: alg("EdDSA"), KeyAlgs: []string{"RS256", "ES256", "EdDSA"}}, "EdDSA", ""},
		{operator.ClientUpdate{Name: alg("untouched")}, "EdDSA", ""},
		{operator.ClientUpdate{IDTokenAlg: alg(""), KeyAlgs: server}, "", ""},
	} {
		_, err := operator.UpdateClient(ctx, st, "rp", tt.u, t0)
		if (err == nil) != (tt.err == "") || (err != nil && (!strings.Contains(err.Error(), tt.err) || !errors.Is(err, operator.ErrInvalid))) {
			t.Errorf("update %+v: %v, want error %q", tt.u, err, tt.err)
		}
		if c, _ := st.GetClient(ctx, "rp"); c.IDTokenAlg != tt.want {
			t.Errorf("after update %+v: stored %q, want %q", tt.u, c.IDTokenAlg, tt.want)
		}
	}
	if _, err := operator.UpdateClient(ctx, st, "rp", operator.ClientUpdate{IDTokenAlg: alg("RS256"), KeyAlgs: server}, t0); err != nil {
		t.Fatal(err)
	}
	list, err := operator.ListClients(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range list {
		got[c.ClientID] = c.IDTokenAlg
	}
	if len(got) != 2 || got["rp"] != "RS256" || got["plain"] != "" {
		t.Errorf("list: %v", got)
	}
}

func TestDeleteClient(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)
	fam := &family.Service{Store: st, Log: slog.New(slog.DiscardHandler), Now: time.Now}
	if _, err := operator.CreateClient(ctx, st, operator.ClientSpec{ID: "web", RedirectURIs: []string{"https://a.example/cb"}}, t0); err != nil {
		t.Fatal(err)
	}
	if err := operator.DeleteClient(ctx, st, fam, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetClient(ctx, "web"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("client still there: %v", err)
	}
	if err := operator.DeleteClient(ctx, st, fam, "web"); err == nil || !strings.Contains(err.Error(), `no client with id "web"`) {
		t.Errorf("second delete: %v", err)
	}
}

func TestCreateUser(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)
	v, err := operator.CreateUser(ctx, st, operator.UserSpec{Username: "alice", Password: "correct horse", Name: "Alice", Email: "alice@example.com"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if v.Username != "alice" || v.Name != "Alice" || v.Email != "alice@example.com" || v.Disabled || v.MFA || len(v.ID) != 36 || v.CreatedAt != "2026-03-01T12:00:00Z" {
		t.Errorf("view %+v", v)
	}
	u, err := st.GetUserByUsername(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != v.ID || !strings.HasPrefix(u.PasswordHash, "$argon2id$") || !secret.VerifyPassword(u.PasswordHash, "correct horse") {
		t.Errorf("stored user %+v", u)
	}

	tests := []struct {
		name string
		spec operator.UserSpec
		want string
	}{
		{"short password", operator.UserSpec{Username: "bob", Password: "short"}, "password must be at least 8 characters"},
		{"no password", operator.UserSpec{Username: "bob"}, "password must be at least 8"},
		{"duplicate", operator.UserSpec{Username: "alice", Password: "another password"}, `a user named "alice" already exists`},
		{"bad username", operator.UserSpec{Username: "bob smith", Password: "long enough"}, "must not contain spaces"},
		{"bad email", operator.UserSpec{Username: "bob", Password: "long enough", Email: "not-an-email"}, "is not valid"},
		{"long email", operator.UserSpec{Username: "bob", Password: "long enough", Email: strings.Repeat("e", 250) + "@x.io"}, "is not valid"},
	}
	for _, tt := range tests {
		if _, err := operator.CreateUser(ctx, st, tt.spec, t0); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
	// Username and password problems are reported together.
	_, err = operator.CreateUser(ctx, st, operator.UserSpec{Username: "", Password: "x"}, t0)
	if err == nil || !strings.Contains(err.Error(), "username must be") || !strings.Contains(err.Error(), "password must be") {
		t.Errorf("joined errors: %v", err)
	}
	if us, _ := st.ListUsers(ctx); len(us) != 1 {
		t.Errorf("%d users, want 1", len(us))
	}
}
