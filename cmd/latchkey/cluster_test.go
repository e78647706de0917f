package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey-dev/latchkey/internal/flow"
	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/testdb"
)

// procLog collects a child process's output while the test reads it.
type procLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *procLog) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }

func (l *procLog) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// serveProc is a running `latchkey serve`.
type serveProc struct {
	name   string
	base   string // http://addr
	cmd    *exec.Cmd
	logs   procLog
	exited chan error
	done   bool
}

func startServeProc(t *testing.T, name, bin string, env []string, addr string) *serveProc {
	t.Helper()
	p := &serveProc{name: name, base: "http://" + addr, exited: make(chan error, 1)}
	p.cmd = exec.Command(bin, "serve")
	p.cmd.Env = append(env, "LATCHKEY_ADDR="+addr)
	p.cmd.Stdout, p.cmd.Stderr = &p.logs, &p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if !p.done {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.logs.String())
		}
	})
	return p
}

// waitReady polls /readyz (the database is reachable) until 200.
func (p *serveProc) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-p.exited:
			p.done = true
			t.Fatalf("%s exited before it was ready: %v", p.name, err)
		default:
		}
		resp, err := http.Get(p.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never became ready: %v", p.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and wants exit status 0.
func (p *serveProc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		p.done = true
		if err != nil {
			t.Errorf("%s after SIGTERM: %v (want exit status 0)", p.name, err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not stop within 30s of SIGTERM", p.name)
	}
}

// tokenCall posts a form to an instance's endpoint as the client and decodes
// the JSON answer.
func tokenCall(t *testing.T, base, path string, form url.Values, id, secret string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("%s%s: not JSON: %.300s", base, path, b)
	}
	return resp.StatusCode, body
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

// TestServeClusterPostgres runs two `latchkey serve` processes on one
// PostgreSQL database with the same master key and issuer, as behind a load
// balancer: a client and a user created with the CLI, a sign-in through
// process 1's pages, the code exchanged at process 2, refreshes alternating
// between them, a key rotation with the CLI while both run, and a graceful
// stop of both with SIGTERM.
func TestServeClusterPostgres(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGTERM")
	}
	dsn := testdb.PostgresDSN(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "latchkey")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	addrs := make([]string, 2)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = ln.Addr().String()
		ln.Close()
	}
	issuer := "http://" + addrs[0]
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LATCHKEY_") {
			env = append(env, kv)
		}
	}
	env = append(env, "LATCHKEY_DATABASE="+dsn, "LATCHKEY_MASTER_KEY="+base64.StdEncoding.EncodeToString(master),
		"LATCHKEY_ISSUER="+issuer, "LATCHKEY_LOG_FORMAT=json",
		// Long enough that only PostgreSQL's NOTIFY can explain a client
		// change reaching a running process within the test (below).
		"LATCHKEY_CLIENT_CACHE_TTL=60s")

	cli := func(stdin string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), errors.New(strings.TrimSpace(string(ee.Stderr)))
		}
		return string(out), err
	}
	mustCLI := func(stdin string, args ...string) string {
		t.Helper()
		out, err := cli(stdin, args...)
		if err != nil {
			t.Fatalf("latchkey %s: %v", strings.Join(args, " "), err)
		}
		return out
	}

	const redirect = "http://localhost:9999/callback"
	const password = "a long password for the cluster test"
	var client struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(mustCLI("", "client", "create", "--id", "web", "--redirect-uri", redirect, "--name", "Web App")), &client); err != nil || client.Secret == "" {
		t.Fatalf("client create: %v %+v", err, client)
	}
	mustCLI(password+"\n", "user", "create", "--username", "alice", "--password-stdin")

	procs := []*serveProc{startServeProc(t, "process 1", bin, env, addrs[0]), startServeProc(t, "process 2", bin, env, addrs[1])}
	for _, p := range procs {
		p.waitReady(t)
	}
	secrets := []string{client.Secret, password}

	// Sign in through process 1's pages; exchange the code at process 2.
	ctx := context.Background()
	cfg := &oauth2.Config{ClientID: client.ID, ClientSecret: client.Secret, RedirectURL: redirect,
		Scopes:   []string{"openid", "profile", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: issuer + "/authorize", TokenURL: procs[1].base + "/token", AuthStyle: oauth2.AuthStyleInHeader}}
	verifier := oauth2.GenerateVerifier()
	cb, err := flow.NewBrowser(nil, redirect).Authorize(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("nonce", "n-procs")), "alice", password)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cfg.Exchange(ctx, cb.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code from process 1 exchanged at process 2: %v", err)
	}
	provider, err := oidc.NewProvider(ctx, issuer) // discovery from process 1
	if err != nil {
		t.Fatal(err)
	}
	// A verifier without discovery accepts only RS256 unless told the
	// algorithms discovery lists (ES256 by default, and RS256).
	var meta struct {
		Algs []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := provider.Claims(&meta); err != nil || len(meta.Algs) == 0 {
		t.Fatalf("discovery: %v %+v", err, meta)
	}
	verifyID := func(raw string) {
		t.Helper()
		for _, p := range procs {
			v := oidc.NewVerifier(issuer, oidc.NewRemoteKeySet(ctx, p.base+"/jwks"), &oidc.Config{ClientID: client.ID, SupportedSigningAlgs: meta.Algs})
			if _, err := v.Verify(ctx, raw); err != nil {
				t.Fatalf("ID token against %s's JWKS: %v", p.name, err)
			}
		}
		if _, err := provider.Verifier(&oidc.Config{ClientID: client.ID}).Verify(ctx, raw); err != nil {
			t.Fatalf("ID token via discovery: %v", err)
		}
	}
	firstID, _ := tok.Extra("id_token").(string)
	verifyID(firstID)
	secrets = append(secrets, tok.RefreshToken, tok.AccessToken, cb.Query().Get("code"))

	rt := tok.RefreshToken
	refresh := func(p *serveProc) map[string]any {
		t.Helper()
		status, body := tokenCall(t, p.base, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, client.ID, client.Secret)
		if status != 200 || str(body, "refresh_token") == "" || str(body, "refresh_token") == rt {
			t.Fatalf("refresh at %s: %d %v", p.name, status, body)
		}
		rt = str(body, "refresh_token")
		secrets = append(secrets, rt, str(body, "access_token"))
		verifyID(str(body, "id_token"))
		return body
	}
	introspectActive := func(p *serveProc, tok string) bool {
		t.Helper()
		status, body := tokenCall(t, p.base, "/introspect", url.Values{"token": {tok}}, client.ID, client.Secret)
		b, _ := body["active"].(bool)
		return status == 200 && b
	}
	for i := range 6 {
		prev := rt
		refresh(procs[i%2])
		if introspectActive(procs[(i+1)%2], prev) || !introspectActive(procs[(i+1)%2], rt) {
			t.Fatalf("round %d: the other process does not see the rotation", i)
		}
	}

	// Keys: per algorithm of the default configuration (ES256, RS256) an
	// active and a published next key; rotating needs force this soon;
	// after it every key is published and old tokens still verify.
	type keyInfo struct {
		Kid       string `json:"kid"`
		Alg       string `json:"alg"`
		State     string `json:"state"`
		Published bool   `json:"published"`
	}
	var list []keyInfo
	if err := json.Unmarshal([]byte(mustCLI("", "keys", "list")), &list); err != nil {
		t.Fatal(err)
	}
	before := map[string]string{} // "ES256/active" → kid
	for _, k := range list {
		if !k.Published || before[k.Alg+"/"+k.State] != "" {
			t.Fatalf("keys list after two processes started: %+v", list)
		}
		before[k.Alg+"/"+k.State] = k.Kid
	}
	if len(list) != 4 || before["ES256/active"] == "" || before["ES256/next"] == "" || before["RS256/active"] == "" || before["RS256/next"] == "" {
		t.Fatalf("keys list after two processes started: %+v", list)
	}
	if _, err := cli("", "keys", "rotate"); err == nil || !strings.Contains(err.Error(), "rotate again") {
		t.Fatalf("keys rotate right after start: %v (want a refusal: the next key is too new)", err)
	}
	var rot keys.RotateResult
	if err := json.Unmarshal([]byte(mustCLI("", "keys", "rotate", "--force")), &rot); err != nil {
		t.Fatal(err)
	}
	if rot.Activated != before["ES256/next"] || len(rot.Retired) != 2 || rot.Created == "" || len(rot.Algorithms) != 2 {
		t.Fatalf("keys rotate: %+v (before: %+v)", rot, list)
	}
	want := map[string]string{}
	for _, r := range rot.Algorithms {
		if r.Activated != before[r.Alg+"/next"] || len(r.Retired) != 1 || r.Retired[0] != before[r.Alg+"/active"] || r.Created == "" {
			t.Fatalf("keys rotate %s: %+v (before: %+v)", r.Alg, r, list)
		}
		want[r.Retired[0]], want[r.Activated], want[r.Created] = store.KeyRetired, store.KeyActive, store.KeyNext
	}
	list = nil
	if err := json.Unmarshal([]byte(mustCLI("", "keys", "list")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 6 {
		t.Errorf("keys list after rotate: %+v", list)
	}
	for _, k := range list {
		if want[k.Kid] != k.State || !k.Published {
			t.Errorf("keys list after rotate: %+v, want %v all published", list, want)
		}
	}
	verifyID(firstID)
	if !introspectActive(procs[0], tok.AccessToken) || !introspectActive(procs[1], tok.AccessToken) {
		t.Error("an access token from before the rotation is inactive")
	}
	refresh(procs[0])
	refresh(procs[1])

	// A client change made with the CLI (another process) reaches both
	// running servers through NOTIFY, not the cache's 60 s: both refuse a
	// refresh without a DPoP proof once the client requires one, and accept
	// it again once it does not. Both have the client cached (the
	// refreshes above).
	refreshStatus := func(p *serveProc) (int, string) {
		t.Helper()
		status, body := tokenCall(t, p.base, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, client.ID, client.Secret)
		if status == 200 {
			rt = str(body, "refresh_token")
			secrets = append(secrets, rt, str(body, "access_token"))
		}
		return status, str(body, "error")
	}
	for _, step := range []struct {
		flag   string
		status int
		err    string
	}{{"--require-dpop", 400, "invalid_dpop_proof"}, {"--no-require-dpop", 200, ""}} {
		mustCLI("", "client", "update", "--id", client.ID, step.flag)
		deadline := time.Now().Add(10 * time.Second)
		for _, p := range procs {
			for {
				status, code := refreshStatus(p)
				if status == step.status && code == step.err {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after client update %s: %s still answers %d %q, want %d %q (client change not notified?)",
						step.flag, p.name, status, code, step.status, step.err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}

	for _, p := range procs {
		p.stop(t)
	}
	for _, p := range procs {
		logs := p.logs.String()
		if !strings.Contains(logs, `"msg":"shutting down"`) {
			t.Errorf("%s: no shutdown log line", p.name)
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(logs, s) {
				t.Errorf("%s: a secret (%.8s…) appears in the logs", p.name, s)
			}
		}
	}
}
