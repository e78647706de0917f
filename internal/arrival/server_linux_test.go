package arrival

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// start serves h on a loopback port until the test ends.
func start(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

func echo() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %s %s a=%s remote=%t local=%t", r.Method, r.URL.Path, r.Host, r.Form.Get("a"),
			r.RemoteAddr != "", r.Context().Value(http.LocalAddrContextKey) != nil)
	})
}

func TestServeWithNetHTTPClient(t *testing.T) {
	addr := start(t, &Server{Handler: echo()})
	base := "http://" + addr
	var reused []bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
	do := func(req *http.Request) (*http.Response, string) {
		t.Helper()
		resp, err := http.DefaultClient.Do(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	get, _ := http.NewRequest("GET", base+"/x?a=1", nil)
	resp, body := do(get)
	if want := "GET /x " + addr + " a=1 remote=true local=true"; resp.StatusCode != 200 || body != want {
		t.Fatalf("GET: %d %q, want %q", resp.StatusCode, body, want)
	}
	if resp.Header.Get("Date") == "" || resp.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("headers: %v", resp.Header)
	}
	post, _ := http.NewRequest("POST", base+"/token", strings.NewReader(url.Values{"a": {"two words"}}.Encode()))
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if _, body := do(post); !strings.HasPrefix(body, "POST /token "+addr+" a=two words") {
		t.Errorf("POST: %q", body)
	}
	head, _ := http.NewRequest("HEAD", base+"/", nil)
	if resp, body := do(head); resp.StatusCode != 200 || body != "" || resp.ContentLength <= 0 {
		t.Errorf("HEAD: %d, body %q, length %d", resp.StatusCode, body, resp.ContentLength)
	}
	if len(reused) != 3 || reused[0] || !reused[1] || !reused[2] {
		t.Errorf("connection reuse %v, want one keep-alive connection for all three", reused)
	}
	// A client that asks for 100-continue gets it before sending its body.
	tr := &http.Transport{ExpectContinueTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	big := strings.Repeat("z", 4000)
	post, _ = http.NewRequest("POST", base+"/c", strings.NewReader("a="+big))
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	post.Header.Set("Expect", "100-continue")
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(post)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "a="+big) {
		t.Errorf("Expect: 100-continue: %d %.60q", resp.StatusCode, b)
	}
}

// raw is a client connection speaking bytes.
type raw struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &raw{t, c, bufio.NewReader(c)}
}

func (r *raw) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
}

func (r *raw) read(method string) (*http.Response, string) {
	r.t.Helper()
	resp, err := http.ReadResponse(r.br, &http.Request{Method: method})
	if err != nil {
		r.t.Fatalf("reading a response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp, string(b)
}

// closed reports whether the server closed the connection (EOF, or a
// reset), waiting at most the connection's deadline.
func (r *raw) closed() bool {
	_, err := r.br.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestPipelinedChunkedAndHTTP10(t *testing.T) {
	addr := start(t, &Server{Handler: echo()})
	c := dial(t, addr)
	c.send("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n" +
		"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n2\r\na=\r\n1\r\nq\r\n0\r\n\r\n" +
		"GET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	for _, want := range []string{"GET /1 h a=", "POST /2 h a=q", "GET /3 h a="} {
		if _, body := c.read("GET"); !strings.HasPrefix(body, want) {
			t.Errorf("pipelined: %q, want %q first", body, want)
		}
	}
	if !c.closed() {
		t.Error("Connection: close left the connection open")
	}

	c = dial(t, addr)
	c.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	if resp, _ := c.read("GET"); resp.Header.Get("Connection") != "keep-alive" {
		t.Errorf("HTTP/1.0 keep-alive answered with Connection %q", resp.Header.Get("Connection"))
	}
	c.send("GET /b HTTP/1.0\r\n\r\n")
	if _, body := c.read("GET"); !strings.HasPrefix(body, "GET /b") {
		t.Errorf("second HTTP/1.0 request: %q", body)
	}
	if !c.closed() {
		t.Error("HTTP/1.0 without keep-alive left the connection open")
	}
}

func TestRefusalsAnswerAndClose(t *testing.T) {
	addr := start(t, &Server{Handler: echo(), MaxHeaderBytes: 512, MaxBodyBytes: 64})
	for _, tc := range []struct {
		in     string
		status int
	}{
		{"GET / HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("x", 600) + "\r\n\r\n", 431},
		{"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 65\r\n\r\n" + strings.Repeat("x", 65), 413},
		{"GET / HTTP/1.1\r\n\r\n", 400},
		{"nonsense\r\n\r\n", 400},
	} {
		c := dial(t, addr)
		c.send(tc.in)
		if resp, _ := c.read("GET"); resp.StatusCode != tc.status || !resp.Close {
			t.Errorf("%.30q: %d (close %t), want %d and close", tc.in, resp.StatusCode, resp.Close, tc.status)
		}
		if !c.closed() {
			t.Errorf("%.30q: connection left open after the refusal", tc.in)
		}
	}
}

func TestTimeoutsCloseConnections(t *testing.T) {
	addr := start(t, &Server{Handler: echo(), ReadHeaderTimeout: 50 * time.Millisecond, ReadTimeout: 100 * time.Millisecond, IdleTimeout: 100 * time.Millisecond})
	partialHeader := dial(t, addr)
	partialHeader.send("GET / HTTP/1.1\r\nHost:")
	partialBody := dial(t, addr)
	partialBody.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
	idle := dial(t, addr)
	idle.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	idle.read("GET")
	silent := dial(t, addr)
	for name, c := range map[string]*raw{"partial header": partialHeader, "partial body": partialBody, "idle": idle, "never sent": silent} {
		if !c.closed() {
			t.Errorf("%s: still open after its timeout", name)
		}
	}
}

// TestSilentConnectionGetsHeaderTimeout: a connection that never sends is
// closed after ReadHeaderTimeout, not the (longer) idle timeout, as
// net/http does: otherwise connections opened and left silent would be
// held for minutes.
func TestSilentConnectionGetsHeaderTimeout(t *testing.T) {
	addr := start(t, &Server{Handler: echo(), ReadHeaderTimeout: 50 * time.Millisecond, IdleTimeout: time.Hour})
	silent := dial(t, addr)
	if !silent.closed() {
		t.Error("a connection that never sent stayed open past ReadHeaderTimeout")
	}
	kept := dial(t, addr)
	kept.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	kept.read("GET")
	_ = kept.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if kept.closed() {
		t.Error("an idle keep-alive connection was closed by ReadHeaderTimeout, not IdleTimeout")
	}
}

func TestPanicClosesOnlyItsConnection(t *testing.T) {
	addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("handler bug")
		}
		io.WriteString(w, "fine")
	})})
	c := dial(t, addr)
	c.send("GET /panic HTTP/1.1\r\nHost: h\r\n\r\n")
	if !c.closed() {
		t.Fatal("a panicking handler's connection stayed open")
	}
	c = dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, body := c.read("GET"); body != "fine" {
		t.Errorf("after a panic: %q", body)
	}
}

func TestClientGoneCancelsContext(t *testing.T) {
	entered, cancelled := make(chan struct{}), make(chan struct{})
	addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(20 * time.Second):
		}
	})})
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	<-entered
	c.c.Close()
	select {
	case <-cancelled:
	case <-time.After(15 * time.Second):
		t.Fatal("the request's context outlived its connection")
	}
}

// TestArrivalOrder: with one worker busy, requests from many connections
// queue, and are served in the order they arrived, not the order Go's
// scheduler would pick.
func TestArrivalOrder(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var order []string
	s := &Server{Workers: 1, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			<-release
		}
		mu.Lock()
		order = append(order, r.URL.Path)
		mu.Unlock()
	})}
	addr := start(t, s)
	first := dial(t, addr)
	first.send("GET /block HTTP/1.1\r\nHost: h\r\n\r\n")
	waitQueued(t, s, 0) // the worker took it
	const n = 24
	conns := make([]*raw, n)
	for i := range conns {
		conns[i] = dial(t, addr)
	}
	// Send from the last connection opened to the first, so arrival order
	// differs from accept order and from descriptor order.
	for i := n - 1; i >= 0; i-- {
		conns[i].send(fmt.Sprintf("GET /%d HTTP/1.1\r\nHost: h\r\n\r\n", i))
		waitQueued(t, s, n-i)
	}
	close(release)
	first.read("GET")
	for i := range conns {
		conns[i].read("GET")
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"/block"}
	for i := n - 1; i >= 0; i-- {
		want = append(want, fmt.Sprintf("/%d", i))
	}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("served in order %v, want arrival order %v", order, want)
	}
}

// waitQueued waits until n requests wait in s's queue.
func waitQueued(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.queue.mu.Lock()
		got := len(s.queue.items) - s.queue.head
		s.queue.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestShutdownAnswersInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "done")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	idle := dial(t, addr)
	idle.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	idle.read("GET")
	busy := dial(t, addr)
	busy.send("GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	if !idle.closed() {
		t.Error("idle connection open after Shutdown began")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("new connections accepted after Shutdown began")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	resp, body := busy.read("GET")
	if body != "done" || !resp.Close {
		t.Errorf("in-flight request during Shutdown: %q, close %t", body, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestShutdownGivesUpAtDeadline(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	c := dial(t, ln.Addr().String())
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want the deadline's error", err)
	}
	if !c.closed() {
		t.Error("connection still open after Shutdown gave up")
	}
}

// TestManyClients: concurrent keep-alive clients each get their own
// answers (run with -race).
func TestManyClients(t *testing.T) {
	addr := start(t, &Server{Handler: echo(), Workers: 4})
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := range 32 {
		wg.Go(func() {
			for i := range 40 {
				v := fmt.Sprintf("%d-%d", g, i)
				resp, err := client.PostForm("http://"+addr+"/p", url.Values{"a": {v}})
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !strings.Contains(string(b), "a="+v+" ") {
					errs <- fmt.Errorf("asked %s, got %q", v, b)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
