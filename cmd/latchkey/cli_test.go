package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/secret"
	"github.com/latchkey-dev/latchkey/internal/store/sqlstore"
	"github.com/latchkey-dev/latchkey/internal/testdb"
)

// cliEnv runs the CLI in-process against one database.
type cliEnv struct {
	t  *testing.T
	db string
	// vars are further environment variables.
	vars map[string]string
}

// newCLI returns a CLI on a new, not yet migrated SQLite file.
func newCLI(t *testing.T) *cliEnv {
	return &cliEnv{t: t, db: filepath.Join(t.TempDir(), "cli.db")}
}

func (c *cliEnv) lookup(k string) (string, bool) {
	if k == "LATCHKEY_DATABASE" {
		return c.db, true
	}
	v, ok := c.vars[k]
	return v, ok
}

// run runs the CLI with stdin and returns stdout, stderr and the error.
func (c *cliEnv) run(stdin string, args ...string) (string, string, error) {
	c.t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, args, strings.NewReader(stdin), &out, &errb, c.lookup)
	return out.String(), errb.String(), err
}

// ok runs the CLI and fails the test on an error.
func (c *cliEnv) ok(stdin string, args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(stdin, args...)
	if err != nil {
		c.t.Fatalf("latchkey %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("output is not the expected JSON: %v\n%s", err, s)
	}
	return v
}

func (c *cliEnv) openStore() *sqlstore.Store {
	c.t.Helper()
	st, err := sqlstore.Open(context.Background(), c.db)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { st.Close() })
	return st
}

func isUsage(err error) bool {
	var ue usageError
	return errors.As(err, &ue)
}

func TestCLIMigrateTwice(t *testing.T) {
	c := newCLI(t)
	for i := range 2 {
		if out := c.ok("", "migrate"); out != "database is up to date\n" {
			t.Errorf("migrate #%d printed %q", i+1, out)
		}
	}
	if out := c.ok("", "client", "list"); strings.TrimSpace(out) != "[]" {
		t.Errorf("client list on a new database: %q", out)
	}
	// --database overrides the environment.
	other := filepath.Join(t.TempDir(), "other.db")
	c.ok("", "migrate", "--database", other)
	if _, err := sqlstore.Open(context.Background(), other); err != nil {
		t.Errorf("--database not used: %v", err)
	}
}

func TestCLIClients(t *testing.T) {
	c := newCLI(t)
	st := c.openStore()
	ctx := context.Background()

	// Confidential client with a generated secret.
	out := c.ok("", "client", "create", "--id", "web", "--redirect-uri", "https://app.example.com/cb", "--name", "Web App")
	web := decodeJSON[operator.ClientView](t, out)
	if web.ClientID != "web" || web.Name != "Web App" || web.Public || web.AuthMethod != "client_secret_basic" ||
		!slices.Equal(web.RedirectURIs, []string{"https://app.example.com/cb"}) || web.PolicyVersion != 1 ||
		!slices.Equal(web.Scopes, []string{"openid", "profile", "email", "offline_access"}) {
		t.Errorf("client create printed %+v", web)
	}
	if len(web.ClientSecret) != 43 {
		t.Fatalf("generated client_secret %q", web.ClientSecret)
	}
	rec, err := st.GetClient(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if !secret.VerifyClientSecret(rec.SecretHash, web.ClientSecret) {
		t.Error("the printed secret does not match the stored hash")
	}

	// A given secret is never printed.
	out = c.ok("", "client", "create", "--id", "given", "--secret", "given-secret-value", "--redirect-uri", "https://app.example.com/cb")
	if strings.Contains(out, `"client_secret":`) || strings.Contains(out, "given-secret-value") {
		t.Errorf("a given secret was printed:\n%s", out)
	}
	rec, _ = st.GetClient(ctx, "given")
	if !secret.VerifyClientSecret(rec.SecretHash, "given-secret-value") {
		t.Error("--secret not stored")
	}

	// Public, repeated --redirect-uri, --scope, lifetimes.
	out = c.ok("", "client", "create", "--id", "spa", "--public", "--redirect-uri", "http://localhost:3000/cb",
		"--redirect-uri", "http://127.0.0.1:3000/cb", "--scope", "openid profile openid", "--refresh-idle", "30d",
		"--refresh-absolute", "90d", "--reuse-report-only")
	spa := decodeJSON[operator.ClientView](t, out)
	if !spa.Public || spa.ClientSecret != "" || spa.AuthMethod != "none" ||
		!slices.Equal(spa.RedirectURIs, []string{"http://localhost:3000/cb", "http://127.0.0.1:3000/cb"}) ||
		!slices.Equal(spa.Scopes, []string{"openid", "profile"}) || spa.RefreshIdle != "720h0m0s" ||
		spa.RefreshAbsolute != "2160h0m0s" || !spa.ReuseReportOnly {
		t.Errorf("public client printed %+v", spa)
	}

	// Duplicate id: an error, but not a usage error.
	_, _, err = c.run("", "client", "create", "--id", "web", "--redirect-uri", "https://other.example/cb")
	if err == nil || !strings.Contains(err.Error(), `a client with id "web" already exists`) || isUsage(err) {
		t.Errorf("duplicate id: %v", err)
	}
	// Validation errors from the operator layer.
	_, _, err = c.run("", "client", "create", "--id", "bad", "--redirect-uri", "http://evil.example/cb")
	if err == nil || !strings.Contains(err.Error(), "must use https") {
		t.Errorf("http redirect: %v", err)
	}
	_, _, err = c.run("", "client", "create", "--id", "bad", "--public", "--secret", "whatever-secret", "--redirect-uri", "https://a.example/cb")
	if err == nil || !strings.Contains(err.Error(), "a public client has no secret") {
		t.Errorf("public with secret: %v", err)
	}
	_, _, err = c.run("", "client", "create", "--id", "bad", "--redirect-uri", "https://a.example/cb", "--refresh-idle", "-1h")
	if !isUsage(err) {
		t.Errorf("negative --refresh-idle: %v", err)
	}

	// list shows them all, without secrets.
	out = c.ok("", "client", "list")
	list := decodeJSON[[]operator.ClientView](t, out)
	var ids []string
	for _, v := range list {
		ids = append(ids, v.ClientID)
		if v.ClientSecret != "" {
			t.Errorf("client list printed a secret for %s", v.ClientID)
		}
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"given", "spa", "web"}) {
		t.Errorf("client list: %v", ids)
	}
	if strings.Contains(out, web.ClientSecret) || strings.Contains(out, "sha256$") || strings.Contains(out, "argon2") {
		t.Error("client list leaks secret material")
	}

	// update --require-mfa bumps the policy version once.
	for i, want := range []int{2, 2} {
		v := decodeJSON[operator.ClientView](t, c.ok("", "client", "update", "--id", "web", "--require-mfa"))
		if !v.RequireMFA || v.PolicyVersion != want {
			t.Errorf("update #%d: require_mfa %v policy_version %d, want true %d", i+1, v.RequireMFA, v.PolicyVersion, want)
		}
	}
	v := decodeJSON[operator.ClientView](t, c.ok("", "client", "update", "--id", "web", "--name", "Renamed"))
	if v.Name != "Renamed" || v.PolicyVersion != 2 || !v.RequireMFA {
		t.Errorf("rename: %+v", v)
	}
	v = decodeJSON[operator.ClientView](t, c.ok("", "client", "update", "--id", "web", "--no-require-mfa"))
	if v.RequireMFA || v.PolicyVersion != 3 {
		t.Errorf("--no-require-mfa: %+v", v)
	}
	v = decodeJSON[operator.ClientView](t, c.ok("", "client", "update", "--id", "web", "--require-mfa=false"))
	if v.RequireMFA || v.PolicyVersion != 3 {
		t.Errorf("--require-mfa=false: %+v", v)
	}
	v = decodeJSON[operator.ClientView](t, c.ok("", "client", "update", "--id", "web", "--redirect-uri", "https://new.example/cb", "--scope", "openid"))
	if !slices.Equal(v.RedirectURIs, []string{"https://new.example/cb"}) || !slices.Equal(v.Scopes, []string{"openid"}) || v.Name != "Renamed" {
		t.Errorf("update redirect/scope: %+v", v)
	}
	if _, _, err := c.run("", "client", "update", "--id", "web", "--require-mfa", "--no-require-mfa"); !isUsage(err) {
		t.Errorf("conflicting MFA flags: %v", err)
	}
	if _, _, err := c.run("", "client", "update", "--id", "nope", "--name", "x"); err == nil || !strings.Contains(err.Error(), `no client with id "nope"`) {
		t.Errorf("update unknown: %v", err)
	}

	// delete.
	if out := c.ok("", "client", "delete", "--id", "web"); out != "deleted client web\n" {
		t.Errorf("delete printed %q", out)
	}
	if _, _, err := c.run("", "client", "delete", "--id", "web"); err == nil || !strings.Contains(err.Error(), `no client with id "web"`) {
		t.Errorf("second delete: %v", err)
	}
	list = decodeJSON[[]operator.ClientView](t, c.ok("", "client", "list"))
	if len(list) != 2 {
		t.Errorf("after delete: %d clients", len(list))
	}
}

// --id-token-alg: the client's id_token_signed_response_alg, one the
// configured servers have keys for (signing_alg, RS256, id_token_algs).
func TestCLIClientIDTokenAlg(t *testing.T) {
	c := newCLI(t)
	create := func(id string, more ...string) (operator.ClientView, error) {
		t.Helper()
		out, _, err := c.run("", append([]string{"client", "create", "--id", id, "--public", "--redirect-uri", "https://rp.example/cb"}, more...)...)
		if err != nil {
			return operator.ClientView{}, err
		}
		return decodeJSON[operator.ClientView](t, out), nil
	}
	if v, err := create("rs", "--id-token-alg", "RS256"); err != nil || v.IDTokenAlg != "RS256" {
		t.Fatalf("create --id-token-alg RS256: %+v %v", v, err)
	}
	if v, err := create("default"); err != nil || v.IDTokenAlg != "" {
		t.Fatalf("create without: %+v %v", v, err)
	}
	for alg, want := range map[string]string{
		"HS256": `ID token algorithm "HS256" must be RS256, ES256 or EdDSA`,
		"es256": `ID token algorithm "es256" must be`,
		"EdDSA": "the server has no EdDSA signing keys (only RS256, ES256); add it to id_token_algs",
	} {
		if _, err := create("bad", "--id-token-alg", alg); err == nil || !strings.Contains(err.Error(), want) || isUsage(err) {
			t.Errorf("create --id-token-alg %s: %v, want %q", alg, err, want)
		}
	}
	// With EdDSA configured (as the servers must be) it is accepted.
	c.vars = map[string]string{"LATCHKEY_ID_TOKEN_ALGS": "EdDSA"}
	if v, err := create("ed", "--id-token-alg", "EdDSA"); err != nil || v.IDTokenAlg != "EdDSA" {
		t.Fatalf("create EdDSA with id_token_algs: %+v %v", v, err)
	}
	// signing_alg RS256 alone: ES256 is not available.
	c.vars = map[string]string{"LATCHKEY_SIGNING_ALG": "RS256"}
	if _, _, err := c.run("", "client", "update", "--id", "rs", "--id-token-alg", "ES256"); err == nil || !strings.Contains(err.Error(), "no ES256 signing keys (only RS256)") {
		t.Errorf("update to ES256 on an RS256 server: %v", err)
	}
	c.vars = nil
	v := decodeJSON[operator.ClientView](t, c.ok("", "client", "update", "--id", "rs", "--id-token-alg", "ES256"))
	if v.IDTokenAlg != "ES256" {
		t.Errorf("update --id-token-alg ES256: %+v", v)
	}
	// Other updates leave it alone; "" goes back to signing_alg.
	if v = decodeJSON[operator.ClientView](t, c.ok("", "client", "update", "--id", "rs", "--name", "RP")); v.IDTokenAlg != "ES256" {
		t.Errorf("update --name changed the algorithm: %+v", v)
	}
	out := c.ok("", "client", "list")
	got := map[string]string{}
	for _, v := range decodeJSON[[]operator.ClientView](t, out) {
		got[v.ClientID] = v.IDTokenAlg
	}
	if len(got) != 3 || got["rs"] != "ES256" || got["ed"] != "EdDSA" || got["default"] != "" || strings.Count(out, "id_token_signed_response_alg") != 2 {
		t.Errorf("client list: %v\n%s", got, out)
	}
	if v = decodeJSON[operator.ClientView](t, c.ok("", "client", "update", "--id", "rs", "--id-token-alg", "")); v.IDTokenAlg != "" {
		t.Errorf("update --id-token-alg '': %+v", v)
	}
}

func TestCLIUsers(t *testing.T) {
	c := newCLI(t)
	out := c.ok("correct horse battery staple\n", "user", "create", "--username", "alice", "--password-stdin", "--name", "Alice", "--email", "alice@example.com")
	alice := decodeJSON[operator.UserView](t, out)
	if alice.Username != "alice" || alice.Name != "Alice" || alice.Email != "alice@example.com" || alice.Disabled || alice.MFA || alice.ID == "" {
		t.Errorf("user create printed %+v", alice)
	}
	st := c.openStore()
	u, err := st.GetUserByUsername(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !secret.VerifyPassword(u.PasswordHash, "correct horse battery staple") {
		t.Error("the password from stdin (without its newline) does not verify")
	}

	// CRLF and no trailing newline are both fine; only the first line counts.
	c.ok("windows password\r\nsecond line\n", "user", "create", "--username", "bob", "--password-stdin")
	c.ok("no newline at all", "user", "create", "--username", "carol", "--password-stdin")
	for name, pw := range map[string]string{"bob": "windows password", "carol": "no newline at all"} {
		u, err := st.GetUserByUsername(context.Background(), name)
		if err != nil || !secret.VerifyPassword(u.PasswordHash, pw) {
			t.Errorf("%s: password %q does not verify (%v)", name, pw, err)
		}
	}

	if _, _, err := c.run("short\n", "user", "create", "--username", "dave", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "at least 8") {
		t.Errorf("short password: %v", err)
	}
	if _, _, err := c.run("", "user", "create", "--username", "dave", "--password-stdin"); err == nil {
		t.Error("empty stdin accepted as a password")
	}
	if _, _, err := c.run("another password\n", "user", "create", "--username", "alice", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("duplicate username: %v", err)
	}
	// Passwords are never taken as arguments.
	if _, _, err := c.run("", "user", "create", "--username", "dave"); !isUsage(err) || !strings.Contains(err.Error(), "--password-stdin is required") {
		t.Errorf("without --password-stdin: %v", err)
	}
	if _, _, err := c.run("", "user", "create", "--username", "dave", "--password", "hunter22"); !isUsage(err) {
		t.Errorf("--password flag: %v", err)
	}

	out = c.ok("", "user", "list")
	users := decodeJSON[[]operator.UserView](t, out)
	var names []string
	for _, u := range users {
		names = append(names, u.Username)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"alice", "bob", "carol"}) {
		t.Errorf("user list: %v", names)
	}
	for _, leak := range []string{"argon2", "$v=19", "password", "correct horse", u.PasswordHash} {
		if strings.Contains(out, leak) {
			t.Errorf("user list prints %q:\n%s", leak, out)
		}
	}
}

func TestCLIUsageErrors(t *testing.T) {
	c := newCLI(t)
	tests := []struct {
		args []string
		want string
	}{
		{nil, "missing command"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"client"}, "client: missing subcommand"},
		{[]string{"client", "frob"}, `client: unknown subcommand "frob"`},
		{[]string{"client", "create", "--nope"}, "flag provided but not defined: -nope"},
		{[]string{"client", "create", "--redirect-uri", "https://a.example/cb"}, "client create: --id is required"},
		{[]string{"client", "update", "--name", "x"}, "client update: --id is required"},
		{[]string{"client", "delete"}, "client delete: --id is required"},
		{[]string{"client", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"client", "create", "--id", "a", "--refresh-idle", "soon"}, "invalid duration"},
		{[]string{"user"}, "user: missing subcommand"},
		{[]string{"user", "frob"}, `user: unknown subcommand "frob"`},
		{[]string{"user", "create", "--password-stdin"}, "user create: --username is required"},
		{[]string{"migrate", "now"}, `unexpected argument "now"`},
		{[]string{"migrate", "--force"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, err := c.run("", tt.args...)
			if !isUsage(err) {
				t.Fatalf("got %v (%T), want a usage error", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
	// Usage errors are caught before the database is touched.
	if _, err := os.Stat(c.db); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a usage error touched the database: %v", err)
	}
}

func TestCLIHelp(t *testing.T) {
	c := newCLI(t)
	out, _, err := c.run("", "help")
	if err != nil || !strings.Contains(out, "latchkey client create --id ID") || !strings.Contains(out, "latchkey user create --username NAME --password-stdin") {
		t.Errorf("help: %v\n%s", err, out)
	}
	_, errOut, err := c.run("", "client", "create", "-h")
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut, "-redirect-uri") {
		t.Errorf("client create -h: %v\n%s", err, errOut)
	}
	_, errOut, _ = c.run("")
	if !strings.Contains(errOut, "Usage:") {
		t.Errorf("no usage printed for a missing command: %q", errOut)
	}
}

func TestCLIPostgres(t *testing.T) {
	c := &cliEnv{t: t, db: testdb.PostgresDSN(t)}
	if out := c.ok("", "migrate"); out != "database is up to date\n" {
		t.Errorf("migrate printed %q", out)
	}
	web := decodeJSON[operator.ClientView](t, c.ok("", "client", "create", "--id", "web", "--redirect-uri", "https://app.example.com/cb", "--name", "Web"))
	if len(web.ClientSecret) != 43 {
		t.Errorf("client_secret %q", web.ClientSecret)
	}
	c.ok("", "client", "create", "--id", "spa", "--public", "--redirect-uri", "http://localhost:3000/cb")
	if _, _, err := c.run("", "client", "create", "--id", "web", "--redirect-uri", "https://app.example.com/cb"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("duplicate on PostgreSQL: %v", err)
	}
	v := decodeJSON[operator.ClientView](t, c.ok("", "client", "update", "--id", "web", "--require-mfa"))
	if v.PolicyVersion != 2 {
		t.Errorf("policy_version %d", v.PolicyVersion)
	}
	c.ok("a long enough password\n", "user", "create", "--username", "alice", "--password-stdin")
	if list := decodeJSON[[]operator.ClientView](t, c.ok("", "client", "list")); len(list) != 2 {
		t.Errorf("client list: %d clients", len(list))
	}
	if users := decodeJSON[[]operator.UserView](t, c.ok("", "user", "list")); len(users) != 1 || users[0].Username != "alice" {
		t.Errorf("user list: %+v", users)
	}
	c.ok("", "client", "delete", "--id", "web")
}
