package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/admin"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/server"
	"github.com/latchkey-dev/latchkey/internal/testdb"
	"github.com/latchkey-dev/latchkey/internal/testserver"
)

const remoteToken = "remote-admin-token-0123456789abcdefghijkl"

// remoteCLI runs the CLI in remote mode against an admin API. Its database
// setting points at a directory that does not exist, so any command that
// opened the database instead of calling the API would fail.
type remoteCLI struct {
	t   *testing.T
	env map[string]string
}

func (c *remoteCLI) run(stdin string, args ...string) (string, error) {
	c.t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, args, strings.NewReader(stdin), &out, &errb, func(k string) (string, bool) { v, ok := c.env[k]; return v, ok })
	return out.String(), err
}

func (c *remoteCLI) ok(stdin string, args ...string) string {
	c.t.Helper()
	out, err := c.run(stdin, args...)
	if err != nil {
		c.t.Fatalf("latchkey %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// startAdmin runs a test server and an admin API on its components.
func startAdmin(t *testing.T) (*testserver.Server, string) {
	t.Helper()
	ts := testserver.Start(t)
	h := &admin.Handler{Store: ts.Store, Families: ts.Srv.Families(), Keys: ts.Srv.Keys(), KeyRetention: time.Hour,
		Log: ts.Log, Now: ts.Clock.Now, Token: remoteToken, RevokeOnPasswordChange: true, Ready: ts.Srv.Ready}
	hs := httptest.NewServer(h.Handler())
	t.Cleanup(hs.Close)
	ts.Remember(remoteToken)
	return ts, hs.URL
}

func TestCLIRemote(t *testing.T) {
	ts, url := startAdmin(t)
	c := &remoteCLI{t: t, env: map[string]string{
		"LATCHKEY_ADMIN_URL": url, "LATCHKEY_ADMIN_TOKEN": remoteToken,
		"LATCHKEY_DATABASE": filepath.Join(t.TempDir(), "missing-dir", "never.db"),
	}}

	// Clients.
	created := decodeJSON[operator.ClientView](t, c.ok("", "client", "create", "--id", "remote-app", "--redirect-uri", "https://app.example.com/cb",
		"--name", "Remote", "--refresh-idle", "72h", "--reuse-report-only"))
	ts.Remember(created.ClientSecret)
	if created.ClientID != "remote-app" || len(created.ClientSecret) != 43 || created.RefreshIdle != "72h0m0s" || !created.ReuseReportOnly {
		t.Errorf("remote client create: %+v", created)
	}
	st, _ := ts.Store.GetClient(context.Background(), "remote-app")
	if st == nil || st.Name != "Remote" {
		t.Fatalf("the client is not in the server's store: %+v", st)
	}
	list := decodeJSON[[]operator.ClientView](t, c.ok("", "client", "list"))
	if len(list) != 5 {
		t.Errorf("remote client list: %d clients", len(list))
	}
	upd := decodeJSON[operator.ClientView](t, c.ok("", "client", "update", "--id", "remote-app", "--require-mfa", "--name", "Renamed"))
	if !upd.RequireMFA || upd.Name != "Renamed" || upd.PolicyVersion != 2 {
		t.Errorf("remote client update: %+v", upd)
	}
	// Errors carry the operator's message, as locally.
	_, err := c.run("", "client", "create", "--id", "remote-app", "--redirect-uri", "https://app.example.com/cb")
	if err == nil || err.Error() != `a client with id "remote-app" already exists` || isUsage(err) {
		t.Errorf("duplicate client: %v", err)
	}
	if out := c.ok("", "client", "delete", "--id", "remote-app"); out != "deleted client remote-app\n" {
		t.Errorf("remote client delete printed %q", out)
	}

	// Users.
	const erinPW = "erin's long enough password"
	ts.Remember(erinPW)
	erin := decodeJSON[operator.UserView](t, c.ok(erinPW+"\n", "user", "create", "--username", "erin", "--password-stdin", "--email", "erin@example.com"))
	if erin.Username != "erin" || erin.Email != "erin@example.com" {
		t.Errorf("remote user create: %+v", erin)
	}
	if users := decodeJSON[[]operator.UserView](t, c.ok("", "user", "list")); len(users) != 3 {
		t.Errorf("remote user list: %+v", users)
	}
	if out := c.ok("", "user", "disable", "--username", "erin"); out != "disabled user erin\n" {
		t.Errorf("disable printed %q", out)
	}
	if u, _ := ts.Store.GetUserByUsername(context.Background(), "erin"); u == nil || !u.Disabled {
		t.Error("erin is not disabled in the store")
	}
	c.ok("", "user", "enable", "--username", "erin")
	if out := c.ok("another long password\n", "user", "set-password", "--username", "erin", "--password-stdin"); out != "password changed; 0 refresh token families ended\n" {
		t.Errorf("set-password printed %q", out)
	}
	if _, err := c.run("x\n", "user", "create", "--username", "frank", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "password must be at least 8") {
		t.Errorf("weak password: %v", err)
	}

	// Grants, tokens and the audit log, after a real sign-in.
	web := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "offline_access")
	tok := ts.Login(web, testserver.Alice, testserver.AlicePW)
	grants := decodeJSON[[]operator.Grant](t, c.ok("", "grant", "list", "--username", testserver.Alice))
	if len(grants) != 1 || grants[0].ClientID != testserver.WebClient || grants[0].LiveFamilies != 1 {
		t.Fatalf("remote grant list: %+v", grants)
	}
	if out := c.ok("", "grant", "revoke", "--username", testserver.Alice, "--client", testserver.WebClient); out != "revoked Alice's grant for web-app\n" {
		t.Errorf("grant revoke printed %q", out)
	}
	testserver.WantError(t, ts.Refresh(tok.RefreshToken, testserver.WebClient, testserver.WebSecret), 400, "invalid_grant")
	if grants := decodeJSON[[]operator.Grant](t, c.ok("", "grant", "list", "--username", testserver.Alice)); len(grants) != 0 {
		t.Errorf("grants after revoke: %+v", grants)
	}
	ts.Login(web, testserver.Bob, testserver.BobPW)
	if out := c.ok("", "token", "revoke", "--username", testserver.Bob); out != "revoked 1 refresh token families\n" {
		t.Errorf("token revoke printed %q", out)
	}
	evs := decodeJSON[[]operator.AuditView](t, c.ok("", "audit", "list", "--username", testserver.Alice, "--limit", "2"))
	if len(evs) != 2 || (evs[0].Type != "consent.withdrawn" && evs[1].Type != "consent.withdrawn") {
		t.Errorf("remote audit list: %+v", evs)
	}

	// A wrong token, and --database with --admin-url.
	c.env["LATCHKEY_ADMIN_TOKEN"] = remoteToken + "-wrong"
	if _, err := c.run("", "client", "list"); err == nil || !strings.Contains(err.Error(), "admin token") {
		t.Errorf("wrong token: %v", err)
	}
	if _, err := c.run("", "client", "list", "--database", "x.db"); !isUsage(err) {
		t.Errorf("--database with remote mode: %v", err)
	}
	delete(c.env, "LATCHKEY_ADMIN_TOKEN")
	if _, err := c.run("", "client", "list", "--admin-url", url); err == nil || !strings.Contains(err.Error(), "LATCHKEY_ADMIN_TOKEN") {
		t.Errorf("no token: %v", err)
	}
}

// syncBuf collects a server's log while the test reads it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestServeAdminListener runs `latchkey serve` in-process with the admin
// API on its own listener, checks health, metrics and the API there (and
// not on the public listener), and stops it as SIGTERM would.
func TestServeAdminListener(t *testing.T) {
	// The shortest checkpoint interval, so that the write below is
	// checkpointed within the test.
	adminURL, publicURL, logs, stop := serveWithAdmin(t, map[string]string{"LATCHKEY_SQLITE_CHECKPOINT_INTERVAL": "250ms"})
	defer stop()

	get := func(url, token string) (int, string) { code, b := getBearer(t, url, token); return code, string(b) }
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _ := get(adminURL+p, ""); code != 200 {
			t.Errorf("admin %s: %d", p, code)
		}
	}
	if code, _ := get(adminURL+"/metrics", ""); code != 401 {
		t.Errorf("metrics without the token: %d", code)
	}
	get(publicURL+"/.well-known/openid-configuration", "")
	code, body := get(adminURL+"/metrics", remoteToken)
	for _, want := range []string{"latchkey_live_families 0", `go_sql_open_connections{db_name="sqlite"}`,
		`latchkey_http_request_duration_seconds_count{method="GET",route="GET /.well-known/openid-configuration",status="200"} 1`} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("metrics (%d) lack %s", code, want)
		}
	}
	if code, _ := get(publicURL+"/v1/clients", remoteToken); code != 404 {
		t.Errorf("the admin API answers on the public listener: %d", code)
	}
	if code, _ := get(publicURL+"/metrics", remoteToken); code != 404 {
		t.Errorf("metrics on the public listener: %d", code)
	}
	c := &remoteCLI{t: t, env: map[string]string{"LATCHKEY_ADMIN_TOKEN": remoteToken}}
	if list := decodeJSON[[]operator.ClientView](t, c.ok("", "client", "list", "--admin-url", adminURL)); len(list) != 0 {
		t.Errorf("client list: %+v", list)
	}

	// A write (through the admin API) is checkpointed, and the passes show
	// in the SQLite checkpoint metrics.
	c.ok("", "client", "create", "--admin-url", adminURL, "--id", "web", "--redirect-uri", "https://app.example.com/cb")
	final := `latchkey_sqlite_checkpoint_duration_seconds_count{pass="final"} `
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, body = get(adminURL+"/metrics", remoteToken)
		if strings.Contains(body, final) && !strings.Contains(body, final+"0\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no final checkpoint pass in the metrics 10s after a write:\n%s", grepLines(body, "latchkey_sqlite"))
		}
	}
	for _, want := range []string{`latchkey_sqlite_checkpoint_duration_seconds_count{pass="background"} `,
		`latchkey_sqlite_checkpoint_errors_total{pass="final"} 0`, "latchkey_sqlite_wal_frames "} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, `latchkey_sqlite_checkpoint_duration_seconds_count{pass="background"} 0`+"\n") || strings.Contains(body, "latchkey_sqlite_wal_frames 0\n") {
		t.Errorf("a checkpoint of a write without background passes or WAL frames:\n%s", grepLines(body, "latchkey_sqlite"))
	}

	// Runtime profiles are off unless admin_pprof is set.
	if code, _ := get(adminURL+"/debug/pprof/heap", remoteToken); code != 404 {
		t.Errorf("profiles without admin_pprof: %d", code)
	}

	stop() // SIGTERM
	// Logs are JSON lines with request ids on every access log, and no secret.
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] == "http" && rec["request_id"] == "" {
			t.Errorf("access log without a request id: %q", line)
		}
	}
	if strings.Contains(logs.String(), remoteToken) {
		t.Error("the admin token reached the log")
	}
}

// serveWithAdmin runs `latchkey serve` in-process on a fresh SQLite
// database with an admin listener and the extra environment extra. It
// returns both listeners' URLs, the log, and stop, which cancels the
// context as SIGTERM would and waits for serve to return nil (safe to call
// twice).
func serveWithAdmin(t *testing.T, extra map[string]string) (adminURL, publicURL string, logs *syncBuf, stop func()) {
	t.Helper()
	db := testdb.SQLitePath(t)
	key := make([]byte, 32)
	env := map[string]string{
		"LATCHKEY_DATABASE": db, "LATCHKEY_MASTER_KEY": base64.StdEncoding.EncodeToString(key),
		"LATCHKEY_ISSUER": "http://localhost:8080", "LATCHKEY_ADMIN_ADDR": "127.0.0.1:0", "LATCHKEY_ADMIN_TOKEN": remoteToken,
	}
	maps.Copy(env, extra)
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncBuf{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0"}, strings.NewReader(""), io.Discard, logs,
			func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve returned %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("serve did not stop")
			}
		})
	}
	addr := func(msg string) string {
		re := regexp.MustCompile(`"msg":"` + msg + `","addr":"([^"]+)"`)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if m := re.FindStringSubmatch(logs.String()); m != nil {
				return m[1]
			}
			if len(done) > 0 {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v\n%s", err, logs.String())
		default:
		}
		stop()
		t.Fatalf("no %q log line:\n%s", msg, logs.String())
		return ""
	}
	return "http://" + addr("admin listening"), "http://" + addr("listening"), logs, stop
}

// getBearer GETs url with the bearer token (none when empty) and returns
// the status and body.
func getBearer(t *testing.T, url, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestServeAdminPprof: with admin_pprof the admin listener serves the
// runtime's profiles behind the admin token, and serve says so in its log.
func TestServeAdminPprof(t *testing.T) {
	adminURL, publicURL, logs, stop := serveWithAdmin(t, map[string]string{"LATCHKEY_ADMIN_PPROF": "true"})
	defer stop()
	get := func(url, token string) (int, []byte) { return getBearer(t, url, token) }
	if code, _ := get(adminURL+"/debug/pprof/heap", ""); code != 401 {
		t.Errorf("heap profile without the token: %d", code)
	}
	for _, p := range []string{"/debug/pprof/heap", "/debug/pprof/profile?seconds=1"} {
		if code, b := get(adminURL+p, remoteToken); code != 200 || !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			t.Errorf("%s: %d, %d bytes, want a gzipped profile", p, code, len(b))
		}
	}
	if code, _ := get(publicURL+"/debug/pprof/heap", remoteToken); code != 404 {
		t.Errorf("profiles on the public listener: %d", code)
	}
	stop()
	if !strings.Contains(logs.String(), `"msg":"runtime profiles served on the admin listener (admin_pprof)"`) {
		t.Errorf("no warning that profiles are served:\n%s", logs.String())
	}
}

// TestServeAllFinishesInFlight: on shutdown (SIGTERM cancels the context)
// the listeners close at once, and a request already being served
// completes.
func TestServeAllFinishesInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		_, _ = w.Write([]byte("finished"))
	})
	var lns []listening
	for _, name := range []string{"public", "admin"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		h := http.Handler(slow)
		if name == "admin" {
			h = http.NotFoundHandler()
		}
		lns = append(lns, listening{name, server.NewHTTPServer(h, testLogger(t)), ln})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveAll(ctx, testLogger(t), 10*time.Second, lns...) }()

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + lns[0].ln.Addr().String() + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()
	<-entered
	cancel()
	// New connections are refused on both listeners while the request runs.
	for _, l := range lns {
		refused := false
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !refused; time.Sleep(10 * time.Millisecond) {
			conn, err := net.DialTimeout("tcp", l.ln.Addr().String(), time.Second)
			if err != nil {
				refused = true
			} else {
				conn.Close()
			}
		}
		if !refused {
			t.Errorf("%s listener still accepts connections after shutdown began", l.name)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("serveAll returned (%v) before the in-flight request finished", err)
	default:
	}
	close(release)
	if r := <-got; r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request: %q %v", r.body, r.err)
	}
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("serveAll: %v", err)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewJSONHandler(io.Discard, nil))
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
