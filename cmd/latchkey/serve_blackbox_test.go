package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer collects a child process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// childEnv is the test's environment without LATCHKEY_* settings, plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LATCHKEY_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// TestServeBlackBox builds the real binary, runs `serve --dev` on a SQLite
// file, creates a client with the CLI on the same file while the server
// runs, sees the server accept it on /authorize, and stops the server with
// SIGTERM.
func TestServeBlackBox(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGTERM")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "latchkey")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	db := filepath.Join(dir, "latchkey.db")
	env := childEnv("LATCHKEY_DATABASE="+db, "LATCHKEY_LOG_FORMAT=json")

	srv := exec.Command(bin, "serve", "--dev", "--addr", "127.0.0.1:0")
	srv.Env = env
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	srv.Stderr = &logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var banner lockedBuffer
	addrc := make(chan string, 1)
	go func() {
		listening := regexp.MustCompile(`\(listening on ([0-9.]+:[0-9]+)\)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			banner.Write([]byte(sc.Text() + "\n"))
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		exited <- srv.Wait()
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = srv.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("server stdout:\n%s\nserver stderr:\n%s", banner.String(), logs.String())
		}
	})

	var addr string
	select {
	case addr = <-addrc:
	case err := <-exited:
		stopped = true
		t.Fatalf("server exited before listening: %v", err)
	case <-time.After(90 * time.Second):
		t.Fatal("no listening address in the banner")
	}
	base := "http://" + addr

	// Wait for /healthz.
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && string(body) == "ok\n" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz never answered: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The start-up log names the public listener's scheduling: arrival
	// order by default on Linux (internal/arrival).
	wantOrder := `"http_order":"goroutine"`
	if runtime.GOOS == "linux" {
		wantOrder = `"http_order":"arrival"`
	}
	for logged := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), `"msg":"listening"`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(logged) {
			t.Fatal("no listening log line") // logs are written by a goroutine, within 10 ms
		}
	}
	if l := logs.String(); !strings.Contains(l, wantOrder) {
		t.Errorf("the listening log line lacks %s:\n%s", wantOrder, l)
	}

	// The dev banner.
	b := banner.String()
	for _, want := range []string{"DEVELOPMENT MODE", "Demo user:     demo / demo-password", "/demo", "demo-web", "demo-spa", db + ".master-key"} {
		if !strings.Contains(b, want) {
			t.Errorf("banner lacks %q:\n%s", want, b)
		}
	}
	if resp, err := client.Get(base + "/demo"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/demo: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	const redirect = "http://localhost:7777/callback"
	authorize := base + "/authorize?" + url.Values{
		"client_id": {"blackbox"}, "redirect_uri": {redirect}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"st-1"},
	}.Encode()

	// Unknown client: an error page, never a redirect.
	resp, err := client.Get(authorize)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "not registered") {
		t.Fatalf("unknown client: %d %v\n%.500s", resp.StatusCode, resp.Header, body)
	}

	// The CLI, on the same database, while the server runs.
	cli := exec.Command(bin, "client", "create", "--id", "blackbox", "--redirect-uri", redirect, "--name", "Black Box")
	cli.Env = env
	out, err := cli.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("client create: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var created struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal(out, &created); err != nil || created.ClientID != "blackbox" || len(created.ClientSecret) != 43 {
		t.Fatalf("client create printed %s (%v)", out, err)
	}

	// The running server now knows the client: on to the sign-in page.
	resp, err = client.Get(authorize)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?request=") {
		t.Fatalf("known client: %d, Location %q", resp.StatusCode, loc)
	}
	// And the login page it points to renders.
	resp, err = client.Get(base + loc)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `name="password"`) || !strings.Contains(string(body), "Black Box") {
		t.Errorf("login page: %d\n%.500s", resp.StatusCode, body)
	}

	// A change made with the CLI reaches the running server within
	// client_cache_ttl (1 s by default; the server has just read the client
	// and cached it): the replaced redirect URI stops being accepted.
	upd := exec.Command(bin, "client", "update", "--id", "blackbox", "--redirect-uri", redirect+"/v2")
	upd.Env = env
	if out, err := upd.CombinedOutput(); err != nil {
		t.Fatalf("client update: %v\n%s", err, out)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := client.Get(authorize)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusBadRequest && resp.Header.Get("Location") == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s after the CLI replaced the redirect URI the server still answers %d (Location %q)", resp.StatusCode, resp.Header.Get("Location"))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Graceful shutdown on SIGTERM: exit status 0.
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("server exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop within 30s of SIGTERM")
	}
	if !strings.Contains(logs.String(), `"msg":"shutting down"`) {
		t.Errorf("no shutdown log line:\n%s", logs.String())
	}
	// Nothing secret reached the logs.
	for _, s := range []string{created.ClientSecret, "demo-password", "demo-web-secret-for-local-development-only"} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("a secret (%.8s…) appears in the server logs", s)
		}
	}
	if _, err := client.Get(base + "/healthz"); err == nil {
		t.Error("server still answers after exiting")
	}
}
