package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/testserver"
)

func TestCheckTarget(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8080", "http://127.1.2.3", "https://localhost/x", "http://LOCALHOST:1", "http://[::1]:8080"} {
		if err := checkTarget(u); err != nil {
			t.Errorf("checkTarget(%q) = %v, want nil", u, err)
		}
	}
	for _, u := range []string{
		"http://10.0.0.1:8080", "http://192.168.1.1", "http://172.16.0.1", "http://8.8.8.8", "http://example.com",
		"http://localhost.example.com", "http://127.0.0.1.nip.io", "http://[::2]", "http://0.0.0.0:8080", "ftp://127.0.0.1", "127.0.0.1:8080",
	} {
		if err := checkTarget(u); err == nil {
			t.Errorf("checkTarget(%q) accepted a non-loopback target", u)
		}
	}
}

func TestLoopbackOnlyDial(t *testing.T) {
	for _, a := range []string{"127.0.0.1:80", "127.9.9.9:1", "[::1]:443", "[::ffff:127.0.0.1]:80"} {
		if err := loopbackOnly("tcp", a, nil); err != nil {
			t.Errorf("%s refused: %v", a, err)
		}
	}
	for _, a := range []string{"10.0.0.1:80", "[2001:db8::1]:443", "192.168.0.1:8080", "0.0.0.0:80", "[::ffff:10.0.0.1]:80"} {
		if err := loopbackOnly("tcp", a, nil); !errors.Is(err, errNotLoopback) {
			t.Errorf("%s: got %v, want a refusal", a, err)
		}
	}
}

// The dialer check holds even when a name resolves elsewhere or a proxy is
// configured: the transport ignores proxies and refuses the connection.
func TestTransportRefusesNonLoopback(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	c := newClient(newTransport(1), 2*time.Second)
	_, err := c.Get("http://192.0.2.1:9/") // TEST-NET-1: nothing is sent
	if !errors.Is(err, errNotLoopback) {
		t.Fatalf("got %v, want a loopback refusal", err)
	}
}

func TestDiscoveryRefusesForeignEndpoints(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{
			"issuer": srv.URL, "authorization_endpoint": srv.URL + "/authorize", "token_endpoint": "http://10.1.2.3/token",
		})
	}))
	defer srv.Close()
	_, err := discover(context.Background(), newClient(newTransport(1), 5*time.Second), srv.URL)
	if !errors.Is(err, errNotLoopback) {
		t.Fatalf("got %v, want a loopback refusal", err)
	}
}

func TestParseStat(t *testing.T) {
	// comm with spaces and parentheses; utime 250, stime 50 ticks.
	s := "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 0 0"
	d, err := parseStat(s)
	if err != nil || d != 3*time.Second {
		t.Fatalf("parseStat = %v, %v; want 3s", d, err)
	}
	if _, err := parseStat("garbage"); err == nil {
		t.Error("garbage parsed")
	}
	self, err := procCPU(os.Getpid())
	if err != nil || self < 0 {
		t.Fatalf("procCPU(self) = %v, %v", self, err)
	}
}

func TestParseMachineStat(t *testing.T) {
	busy, total, err := parseMachineStat("cpu  100 5 50 800 20 3 2 10 7 0\ncpu0 1 2 3\n")
	if err != nil {
		t.Fatal(err)
	}
	// total = 100+5+50+800+20+3+2+10 ticks (guest columns excluded), busy = total-800-20.
	if total != 990*clockTick || busy != 170*clockTick {
		t.Fatalf("busy %v total %v", busy, total)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.9: 90 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond} {
		if got := percentile(d, p); got != want {
			t.Errorf("p%v = %v, want %v", p*100, got, want)
		}
	}
	if got := percentile([]time.Duration{7}, 0.99); got != 7 {
		t.Errorf("single sample: %v", got)
	}
	if median([]float64{3, 1, 2, 10}) != 2.5 || median([]float64{5, 1, 3}) != 3 {
		t.Error("median")
	}
}

func TestFlagValidation(t *testing.T) {
	base := []string{"-issuer", "http://127.0.0.1:1", "-client-id", "c", "-redirect-uri", "http://localhost/cb", "-username", "u", "-password", "p"}
	env := func(string) (string, bool) { return "", false }
	if _, err := parseFlags(base, &bytes.Buffer{}, env); err != nil {
		t.Fatalf("valid flags refused: %v", err)
	}
	for _, extra := range [][]string{
		{"-issuer", "http://10.0.0.1"}, {"-mode", "nope"}, {"-c", "0"}, {"-c", "5000"}, {"-d", "11m"}, {"-d", "0s"},
		{"-n", "3", "-c", "4"}, {"-mode", "introspect"}, {"-auth", "jwt"}, {"-warmup", "2m"},
		{"-mode", "code", "-tokens-out", "tokens.txt"},
	} {
		if _, err := parseFlags(append(append([]string{}, base...), extra...), &bytes.Buffer{}, env); err == nil {
			t.Errorf("%v accepted", extra)
		}
	}
	o, err := parseFlags(base[:len(base)-2], &bytes.Buffer{}, func(k string) (string, bool) {
		return map[string]string{"LATCHKEY_BENCH_PASSWORD": "from-env"}[k], true
	})
	if err != nil || o.password != "from-env" {
		t.Fatalf("password from env: %v %q", err, o.password)
	}
	// -dump: a file that cannot be created fails the run before it
	// starts (the issuer here is not even listening).
	bad := append(append([]string{}, base...), "-dump", filepath.Join(t.TempDir(), "no", "such", "dir"))
	if err := run(context.Background(), bad, &bytes.Buffer{}, &bytes.Buffer{}, env); err == nil || !strings.Contains(err.Error(), "-dump") {
		t.Fatalf("-dump into a missing directory: %v", err)
	}
}

// TestAgainstLatchkey runs every mode briefly against a real server (on
// loopback) and checks that it measured grants without errors. It makes no
// assertion about speed.
func TestAgainstLatchkey(t *testing.T) {
	ts := testserver.Start(t)
	dir := t.TempDir()
	var files []string
	// -max-requests bounds the whole run, warm-up included, so it must
	// leave requests for the window even when the server is fast: with the
	// verified-token cache two workers introspect more than 200 times in
	// the 100 ms warm-up.
	for _, mode := range []string{"refresh", "code", "introspect"} {
		t.Run(mode, func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := []string{
				"-issuer", ts.URL, "-client-id", testserver.WebClient, "-client-secret", testserver.WebSecret,
				"-redirect-uri", testserver.Redirect, "-username", testserver.Alice, "-password", testserver.AlicePW,
				"-mode", mode, "-c", "2", "-n", "3", "-d", "1s", "-warmup", "100ms", "-max-requests", "5000",
				"-pid", strconv.Itoa(os.Getpid()), "-json", "-label", "test", "-interval", "250ms",
			}
			dump := filepath.Join(dir, mode+".dump")
			if runtime.GOOS == "linux" {
				args = append(args, "-dump", dump)
			}
			before, _ := monotonicNow()
			if err := run(context.Background(), args, &out, &errOut, func(string) (string, bool) { return "", false }); err != nil {
				t.Fatalf("run: %v\n%s", err, errOut.String())
			}
			var rep report
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("bad JSON %q: %v", out.String(), err)
			}
			if rep.OK == 0 || rep.Failed != 0 || len(rep.Errors) != 0 || rep.Latency == nil {
				t.Fatalf("got %+v", rep)
			}
			if rep.ServerRSSMiB <= 0 || rep.ServerPeakRSSMiB < rep.ServerRSSMiB {
				t.Errorf("server memory: RSS %v MiB, peak %v MiB", rep.ServerRSSMiB, rep.ServerPeakRSSMiB)
			}
			if len(rep.Intervals) == 0 || rep.Intervals[0].ServerRSSMiB <= 0 {
				t.Errorf("-interval 250ms over a 1 s window: intervals %+v", rep.Intervals)
			}
			if rep.Requests > 5000 {
				t.Errorf("%d requests despite -max-requests 5000", rep.Requests)
			}
			if mode == "code" && rep.IterationLatency == nil {
				t.Error("code mode without iteration latency")
			}
			if runtime.GOOS == "linux" {
				// -dump: one line per measured grant, its start on
				// CLOCK_MONOTONIC within the run, its latency positive.
				after, _ := monotonicNow()
				f, err := os.Open(dump)
				if err != nil {
					t.Fatal(err)
				}
				reqs, err := readDump(f)
				f.Close()
				if err != nil || int64(len(reqs)) != rep.OK {
					t.Fatalf("-dump: %d lines, %d grants (%v)", len(reqs), rep.OK, err)
				}
				for _, r := range reqs {
					if r.start < before || r.end() > after || r.lat <= 0 {
						t.Fatalf("-dump line %+v outside the run [%d, %d]", r, before, after)
					}
				}
			}
			f := filepath.Join(dir, mode+".json")
			if err := os.WriteFile(f, out.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		})
	}
	var sum bytes.Buffer
	if err := run(context.Background(), append([]string{"summarize"}, files...), &sum, &bytes.Buffer{}, nil); err != nil {
		t.Fatal(err)
	}
	// -max-requests bounds the whole run, warm-up included, so it must
	// leave requests for the window even when the server is fast: with the
	// verified-token cache two workers introspect more than 200 times in
	// the 100 ms warm-up.
	for _, mode := range []string{"refresh", "code", "introspect"} {
		if !strings.Contains(sum.String(), mode) {
			t.Errorf("summary lacks %s:\n%s", mode, sum.String())
		}
	}
}

// -tokens-out writes -n working refresh tokens to a new 0600 file and runs
// no load; it never overwrites a file, and leaves none when it fails.
func TestTokensOut(t *testing.T) {
	ts := testserver.Start(t)
	dir := t.TempDir()
	env := func(string) (string, bool) { return "", false }
	args := func(out, password string) []string {
		return []string{
			"-issuer", ts.URL, "-client-id", testserver.WebClient, "-client-secret", testserver.WebSecret,
			"-redirect-uri", testserver.Redirect, "-username", testserver.Alice, "-password", password,
			"-c", "2", "-n", "3", "-tokens-out", out,
		}
	}
	out := filepath.Join(dir, "tokens")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), args(out, testserver.AlicePW), &stdout, &stderr, env); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if stdout.Len() != 0 || !strings.Contains(stderr.String(), "wrote 3 refresh tokens") {
		t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	st, err := os.Stat(out)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("stat: %v %v", st, err)
	}
	b, _ := os.ReadFile(out)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 || lines[0] == lines[1] {
		t.Fatalf("token file: %q", b)
	}
	// The tokens are live: each rotates once.
	o := &options{clientID: testserver.WebClient, clientSecret: testserver.WebSecret, authMethod: "basic", mode: "refresh", timeout: 5 * time.Second}
	r := &runner{o: o, m: &metadata{TokenEndpoint: ts.URL + "/token"}, hc: newClient(newTransport(1), 5*time.Second)}
	for _, tok := range lines {
		c := &credential{refresh: tok}
		if kind, e := r.refresh(context.Background(), r.hc, c); kind != "" || c.refresh == tok {
			t.Fatalf("refresh with a written token: %q %q", kind, e)
		}
	}
	// An existing file is refused, before any sign-in, and kept as it was.
	err = run(context.Background(), args(out, testserver.AlicePW), &bytes.Buffer{}, &bytes.Buffer{}, env)
	if err == nil || !strings.Contains(err.Error(), "-tokens-out") {
		t.Fatalf("existing file: %v", err)
	}
	if again, _ := os.ReadFile(out); !bytes.Equal(again, b) {
		t.Fatal("existing token file changed")
	}
	// A failed sign-in leaves no file behind.
	failed := filepath.Join(dir, "failed")
	if err := run(context.Background(), args(failed, "wrong password"), &bytes.Buffer{}, &bytes.Buffer{}, env); err == nil {
		t.Fatal("wrong password: no error")
	}
	if _, err := os.Stat(failed); !os.IsNotExist(err) {
		t.Fatalf("failed run left %s: %v", failed, err)
	}
}

// A refused refresh token is counted by kind and retires that family.
func TestRefusedTokensAreCounted(t *testing.T) {
	ts := testserver.Start(t)
	o := &options{clientID: testserver.WebClient, clientSecret: testserver.WebSecret, authMethod: "basic", mode: "refresh", timeout: 5 * time.Second}
	r := &runner{o: o, m: &metadata{TokenEndpoint: ts.URL + "/token"}, hc: newClient(newTransport(1), 5*time.Second)}
	for _, d := range []doer{r.hc, newConnClient(5 * time.Second)} {
		c := &credential{refresh: "lkrt_not-a-real-token"}
		kind, _ := r.refresh(context.Background(), d, c)
		if kind != "HTTP 400 invalid_grant" || !c.dead {
			t.Fatalf("%T: kind %q dead %v", d, kind, c.dead)
		}
	}
	r.m.TokenEndpoint = "http://127.0.0.1:1/token"
	for _, d := range []doer{r.hc, newConnClient(5 * time.Second)} {
		if kind, _ := r.refresh(context.Background(), d, &credential{refresh: "x"}); kind != "transport: connection refused" {
			t.Fatalf("%T: kind %q", d, kind)
		}
	}
}

func TestParseStatusMem(t *testing.T) {
	s := "Name:\tlatchkey\nVmPeak:\t 1300000 kB\nVmHWM:\t   61440 kB\nVmRSS:\t   40960 kB\nThreads:\t7\n"
	rss, peak, err := parseStatusMem(s)
	if err != nil || rss != 40<<20 || peak != 60<<20 {
		t.Fatalf("parseStatusMem = %d, %d, %v; want 40 MiB, 60 MiB", rss, peak, err)
	}
	for _, bad := range []string{"", "VmRSS:\t12 kB\n", "VmRSS:\tx kB\nVmHWM:\t1 kB\n", "VmRSS:\t1 MB\nVmHWM:\t1 kB\n"} {
		if _, _, err := parseStatusMem(bad); err == nil {
			t.Errorf("parseStatusMem(%q) accepted", bad)
		}
	}
	if rss, _, err := procMem(os.Getpid()); err != nil || rss <= 0 {
		t.Errorf("procMem(self) = %d, %v", rss, err)
	}
}
