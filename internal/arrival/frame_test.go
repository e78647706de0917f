package arrival

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

const (
	testMaxHeader = 1024
	testMaxBody   = 256
)

// frameAll frames every request in in, fed to the framer in pieces of at
// most step bytes, as a connection's reads would.
func frameAll(t testing.TB, in []byte, step int) (reqs []*http.Request, bodies []string, err error) {
	var f framer
	var buf []byte
	for off := 0; off < len(in); {
		end := min(off+step, len(in))
		buf = append(buf, in[off:end]...)
		off = end
		for {
			req, n, err := f.next(buf, testMaxHeader, testMaxBody, nil)
			if err != nil {
				return reqs, bodies, err
			}
			if req == nil {
				break
			}
			b, rerr := io.ReadAll(req.Body)
			if rerr != nil {
				t.Fatalf("reading a framed body: %v", rerr)
			}
			reqs, bodies = append(reqs, req), append(bodies, string(b))
			buf = buf[n:]
		}
	}
	return reqs, bodies, nil
}

func TestFramerRequests(t *testing.T) {
	in := "\r\nPOST /token?x=1 HTTP/1.1\r\nHost: a.example\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\ngrant_type=" +
		"GET /jwks HTTP/1.1\r\nHost: a.example\r\n\r\n" +
		"POST /c HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n" +
		"GET /old HTTP/1.0\r\n\r\n"
	for _, step := range []int{1, 2, 7, 64, len(in)} {
		reqs, bodies, err := frameAll(t, []byte(in), step)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if len(reqs) != 4 {
			t.Fatalf("step %d: %d requests, want 4", step, len(reqs))
		}
		want := []struct{ method, uri, host, body string }{
			{"POST", "/token?x=1", "a.example", "grant_type="},
			{"GET", "/jwks", "a.example", ""},
			{"POST", "/c", "a.example", "abcde"},
			{"GET", "/old", "", ""},
		}
		for i, w := range want {
			r := reqs[i]
			if r.Method != w.method || r.RequestURI != w.uri || r.Host != w.host || bodies[i] != w.body {
				t.Errorf("step %d, request %d: %s %s host %q body %q; want %+v", step, i, r.Method, r.RequestURI, r.Host, bodies[i], w)
			}
			if r.ContentLength != int64(len(w.body)) || r.TransferEncoding != nil {
				t.Errorf("step %d, request %d: ContentLength %d, TransferEncoding %v", step, i, r.ContentLength, r.TransferEncoding)
			}
			if _, ok := r.Header["Host"]; ok {
				t.Errorf("request %d: Host left in the header map (net/http moves it to Request.Host)", i)
			}
		}
		if !reqs[3].Close {
			t.Errorf("HTTP/1.0 without keep-alive: Close = false")
		}
	}
}

func TestFramerRefusals(t *testing.T) {
	long := strings.Repeat("a", testMaxHeader)
	for _, tc := range []struct {
		name, in string
		status   int
	}{
		{"header too large, incomplete", "GET /" + long, http.StatusRequestHeaderFieldsTooLarge},
		{"header too large, complete", "GET / HTTP/1.1\r\nHost: a\r\nX: " + long + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
		{"body too large", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 257\r\n\r\n", http.StatusRequestEntityTooLarge},
		{"chunked too large", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n101\r\n" + strings.Repeat("b", 257) + "\r\n0\r\n\r\n", http.StatusRequestEntityTooLarge},
		{"malformed chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", http.StatusBadRequest},
		{"malformed request line", "GET\r\n\r\n", http.StatusBadRequest},
		{"negative length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", http.StatusBadRequest},
		{"two lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", http.StatusBadRequest},
		{"missing Host", "GET / HTTP/1.1\r\n\r\n", http.StatusBadRequest},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", http.StatusBadRequest},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", http.StatusBadRequest},
		{"bad header name", "GET / HTTP/1.1\r\nHost: a\r\nX(: 1\r\n\r\n", http.StatusBadRequest},
		{"length and chunked", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", http.StatusBadRequest},
		{"other transfer coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", http.StatusNotImplemented},
		{"unknown expectation", "GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", http.StatusExpectationFailed},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", http.StatusHTTPVersionNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := frameAll(t, []byte(tc.in), len(tc.in))
			var fe *frameError
			if !errors.As(err, &fe) || fe.status != tc.status {
				t.Fatalf("err = %v, want a refusal with %d", err, tc.status)
			}
			if out := refusal(fe); !bytes.Contains(out, []byte("Connection: close\r\n")) {
				t.Errorf("refusal does not close: %q", out)
			}
		})
	}
}

func TestFramerContinue(t *testing.T) {
	var f framer
	sent := 0
	in := []byte("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
	for range 2 { // asked once however often the framer looks
		req, _, err := f.next(in, testMaxHeader, testMaxBody, func() { sent++ })
		if req != nil || err != nil {
			t.Fatalf("incomplete body framed: %v %v", req, err)
		}
	}
	if sent != 1 {
		t.Fatalf("100 Continue sent %d times, want 1", sent)
	}
	req, n, err := f.next(append(in, "abc"...), testMaxHeader, testMaxBody, func() { sent++ })
	if err != nil || req == nil || n != len(in)+3 || sent != 1 {
		t.Fatalf("framed %v, %d bytes, %v, continues %d", req, n, err, sent)
	}
	if req.Header.Get("Expect") != "" {
		t.Errorf("Expect passed to the handler; the server answered it")
	}
}

func TestAppendResponse(t *testing.T) {
	get, _ := http.NewRequest("GET", "/", nil)
	head, _ := http.NewRequest("HEAD", "/", nil)
	for _, tc := range []struct {
		name     string
		req      *http.Request
		handler  func(w http.ResponseWriter)
		closing  bool
		has, not []string
	}{
		{"sniffed type and length", get, func(w http.ResponseWriter) { io.WriteString(w, "<html>hi") },
			false, []string{"HTTP/1.1 200 OK\r\n", "Content-Type: text/html; charset=utf-8\r\n", "Content-Length: 8\r\n", "Date: ", "\r\n\r\n<html>hi"}, []string{"Connection"}},
		{"no body for 204", get, func(w http.ResponseWriter) { w.WriteHeader(204) },
			true, []string{"HTTP/1.1 204 No Content\r\n", "Connection: close\r\n"}, []string{"Content-Length", "Content-Type"}},
		{"HEAD keeps the GET's length", head, func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "42")
			io.WriteString(w, "ignored")
		}, false, []string{"Content-Length: 42\r\n"}, []string{"ignored"}},
		{"header value cannot split the response", get, func(w http.ResponseWriter) {
			w.Header()["X-Evil"] = []string{"a\r\nSet-Cookie: x=1"}
			w.WriteHeader(400)
		}, false, []string{"X-Evil: a  Set-Cookie: x=1\r\n", "HTTP/1.1 400 Bad Request\r\n"}, []string{"\nSet-Cookie"}},
		{"handler's length replaced by the written one", get, func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "99")
			io.WriteString(w, "abc")
		}, false, []string{"Content-Length: 3\r\n"}, []string{"99"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &response{req: tc.req, header: http.Header{}}
			tc.handler(w)
			out := string(appendResponse(nil, w, tc.closing, false))
			for _, s := range tc.has {
				if !strings.Contains(out, s) {
					t.Errorf("response lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(out, s) {
					t.Errorf("response has %q:\n%s", s, out)
				}
			}
		})
	}
}

// FuzzFramer: any bytes, in any pieces, frame the same requests (or the
// same refusal) as in one piece, without a panic.
func FuzzFramer(f *testing.F) {
	f.Add([]byte("POST /token HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n"), uint8(3))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nT: 1\r\n\r\n"), uint8(1))
	f.Add([]byte("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), uint8(5))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		if len(in) > 4*testMaxHeader {
			return
		}
		whole, wb, werr := frameAll(t, in, len(in)+1)
		parts, pb, perr := frameAll(t, in, int(step)%32+1)
		if len(whole) != len(parts) || (werr == nil) != (perr == nil) {
			t.Fatalf("whole: %d requests, %v; in pieces: %d, %v", len(whole), werr, len(parts), perr)
		}
		for i := range whole {
			if whole[i].Method != parts[i].Method || whole[i].RequestURI != parts[i].RequestURI || wb[i] != pb[i] {
				t.Fatalf("request %d differs: %s %s %q / %s %s %q", i, whole[i].Method, whole[i].RequestURI, wb[i], parts[i].Method, parts[i].RequestURI, pb[i])
			}
		}
	})
}

// TestQueueOrderAndRoom: the queue hands entries out in the order they
// came, and under a load that never lets it empty it does not keep the
// room of entries already taken.
func TestQueueOrderAndRoom(t *testing.T) {
	var q queue
	q.init()
	conns := make([]*conn, 20000)
	for i := range conns {
		conns[i] = &conn{fd: i}
	}
	const waiting = 100
	next := 0
	for i, c := range conns {
		q.push(c)
		if i < waiting {
			continue
		}
		// One in, one out: 100 always wait, the queue never empties.
		if got := q.pop(); got != conns[next] {
			t.Fatalf("pop %d: fd %d, want %d", next, got.fd, next)
		}
		next++
		if cap(q.items) > 8*waiting+256 {
			t.Fatalf("after %d pushes: room for %d entries, %d waiting", i+1, cap(q.items), waiting)
		}
	}
	q.close()
	for c := q.pop(); c != nil; c = q.pop() {
		if c != conns[next] {
			t.Fatalf("pop %d: fd %d", next, c.fd)
		}
		next++
	}
	if next != len(conns) {
		t.Fatalf("%d popped, want %d", next, len(conns))
	}
}
