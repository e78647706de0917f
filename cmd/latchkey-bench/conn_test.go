package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// connServer is an httptest server that records which connection each
// request came on.
func connServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var remotes []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		remotes = append(remotes, r.RemoteAddr)
		mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), remotes...)
	}
}

func get(t *testing.T, c *connClient, ctx context.Context, url string) (string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("a=b"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Requests share one keep-alive connection, whatever the body's framing;
// a response the server closes the connection after makes the next
// request dial again.
func TestConnClientKeepAlive(t *testing.T) {
	ts, remotes := connServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/chunked":
			w.Write(b)
			w.(http.Flusher).Flush() // no Content-Length: chunked
			w.Write([]byte("!"))
		case "/close":
			w.Header().Set("Connection", "close")
			w.Write(b)
		default:
			w.Write(b)
		}
	})
	c := newConnClient(5 * time.Second)
	defer c.Close()
	for i, path := range []string{"/", "/chunked", "/", "/close", "/", "/"} {
		body, err := get(t, c, context.Background(), ts.URL+path)
		want := "a=b"
		if path == "/chunked" {
			want = "a=b!"
		}
		if err != nil || body != want {
			t.Fatalf("request %d (%s): %q, %v", i, path, body, err)
		}
	}
	r := remotes()
	if r[0] != r[1] || r[1] != r[2] || r[2] != r[3] {
		t.Errorf("keep-alive not kept: %v", r)
	}
	if r[3] == r[4] || r[4] != r[5] {
		t.Errorf("after Connection: close want one new connection: %v", r)
	}
}

// A body left unread is drained by Close, so the connection carries the
// next request; one over 1 MiB is not worth it: the connection is closed.
func TestConnClientDrainsBodies(t *testing.T) {
	ts, remotes := connServer(t, func(w http.ResponseWriter, r *http.Request) {
		n := 10
		if r.URL.Path == "/big" {
			n = 2 << 20
		}
		w.Write([]byte(strings.Repeat("x", n)))
	})
	c := newConnClient(5 * time.Second)
	defer c.Close()
	for _, path := range []string{"/", "/", "/big", "/"} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close() // unread
		resp.Body.Close() // twice is harmless
	}
	r := remotes()
	if r[0] != r[1] || r[1] != r[2] || r[2] == r[3] {
		t.Errorf("want one connection for the first three requests and a new one after the big body: %v", r)
	}
}

// The timeout and a cancelled context both end a request the server does
// not answer, with errors the load tool classifies, and the next request
// gets a fresh connection.
func TestConnClientTimeoutAndCancel(t *testing.T) {
	release := make(chan struct{})
	ts, _ := connServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		w.Write([]byte("ok"))
	})
	defer close(release)
	c := newConnClient(100 * time.Millisecond)
	defer c.Close()
	_, err := get(t, c, context.Background(), ts.URL+"/slow")
	if !errors.Is(err, os.ErrDeadlineExceeded) || transportKind(err) != "transport: timeout" {
		t.Fatalf("timeout: %v (%s)", err, transportKind(err))
	}
	// With a timeout of a minute, only the cancellation can end this one
	// within half of it.
	c.timeout = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err = get(t, c, ctx, ts.URL+"/slow")
	if !errors.Is(err, context.Canceled) || transportKind(err) != "transport: canceled" || time.Since(start) > 30*time.Second {
		t.Fatalf("cancel: %v (%s) after %v", err, transportKind(err), time.Since(start))
	}
	if body, err := get(t, c, context.Background(), ts.URL+"/"); err != nil || body != "ok" {
		t.Fatalf("after a failed request: %q %v", body, err)
	}
}

// connClient refuses what it cannot carry, and dials only loopback.
func TestConnClientRefuses(t *testing.T) {
	c := newConnClient(time.Second)
	req, _ := http.NewRequest(http.MethodGet, "https://127.0.0.1:1/", nil)
	if _, err := c.Do(req); err == nil {
		t.Error("https accepted")
	}
	if _, err := c.dial(context.Background(), "tcp", "192.0.2.1:80"); !errors.Is(err, errNotLoopback) {
		t.Errorf("dial to a non-loopback address: %v", err)
	}
	var ne net.Error
	req, _ = http.NewRequest(http.MethodGet, "http://127.0.0.1:1/", nil)
	if _, err := c.Do(req); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("closed port: %v", err)
	}
}
