// Package arrival serves HTTP/1.1 in the order requests arrive.
//
// net/http runs one goroutine per connection and leaves the order in which
// they run to Go's scheduler, which is not arrival order: its network
// poller hands over each poll's ready connections last-first, and the
// goroutine woken last runs next. On a busy core a request that arrived
// early can wait for every request of the next poll round too; at 16 and
// 64 concurrent clients that put the 99th percentile at about twice the
// median on a bare server doing nothing but spend CPU (docs/BENCHMARKS.md,
// session 8). This server asks the kernel instead: connections sit in an
// edge-triggered epoll instance of its own, whose ready list is in arrival
// order; one goroutine drains it, reads each connection's bytes, frames
// whole requests and appends them to a FIFO queue; a fixed pool of Workers
// takes requests from its head, runs the handler into a buffer and writes
// the response. At most Workers requests are past the queue at once (the
// rest wait in arrival order), so the scheduler can reorder no more than
// those.
//
// It is the public listener of `latchkey serve` on Linux (config
// "http_order"); elsewhere Serve returns ErrUnsupported and the caller
// falls back to net/http. What it leaves out, on purpose: TLS (Latchkey
// serves plain HTTP behind a TLS-terminating proxy), HTTP/2, Hijack and
// streaming responses (every response is buffered, then written whole; no
// handler of the public listener streams).
package arrival

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// ErrUnsupported is returned by Serve where the server cannot run (not
// Linux).
var ErrUnsupported = errors.New("arrival-order serving needs Linux (epoll)")

// Defaults of the zero Server's limits.
const (
	WorkersPerCore        = 8
	DefaultMaxHeaderBytes = 64 << 10
	DefaultMaxBodyBytes   = 1 << 20
)

// Server serves HTTP/1.1 requests to Handler in arrival order. Its fields
// mean what http.Server's do, with the differences noted.
type Server struct {
	Handler http.Handler
	// Workers is how many requests may be in the handler at once (0:
	// WorkersPerCore for each of GOMAXPROCS). More lets requests that wait
	// (on a database, on a group commit) overlap; fewer keeps arrival
	// order tighter.
	Workers int
	// ReadHeaderTimeout bounds the time from a request's first byte to the
	// end of its header, ReadTimeout to the end of its body; a connection
	// that takes longer is closed. Zero: no limit.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	// WriteTimeout bounds writing one response (not, as in net/http, the
	// handler's time too). Zero: no limit.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection after this long without a
	// request (zero: ReadTimeout; both zero: never).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's line and header (431 beyond it);
	// MaxBodyBytes its body, as sent and as decoded (413 beyond it).
	MaxHeaderBytes int
	MaxBodyBytes   int64
	// Log receives what net/http's ErrorLog would: handler panics, failed
	// accepts. Nil: slog.Default.
	Log *slog.Logger

	mu       sync.Mutex
	conns    map[int]*conn // by file descriptor
	inFlight int           // requests queued or in the handler
	shutdown atomic.Bool
	closing  chan struct{} // closed by Shutdown
	started  bool
	ln       net.Listener
	stopOnce sync.Once
	done     chan struct{} // closed when Serve has stopped its goroutines
	loop     poller        // the platform's event loop (loop_linux.go)
	queue    queue
}

func (s *Server) workers() int {
	if s.Workers > 0 {
		return s.Workers
	}
	return WorkersPerCore * runtime.GOMAXPROCS(0)
}

func (s *Server) maxHeaderBytes() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return DefaultMaxHeaderBytes
}

func (s *Server) maxBodyBytes() int64 {
	if s.MaxBodyBytes > 0 {
		return s.MaxBodyBytes
	}
	return DefaultMaxBodyBytes
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return s.ReadTimeout
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// init prepares s for Serve; it reports whether s was already started or
// shut down.
func (s *Server) init() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("arrival: Serve called twice")
	}
	if s.shutdown.Load() {
		return http.ErrServerClosed
	}
	s.started = true
	s.conns = map[int]*conn{}
	s.closing = make(chan struct{})
	s.done = make(chan struct{})
	s.queue.init()
	return nil
}

// queue is the FIFO of connections whose next request is framed and
// waiting for a worker. A connection has at most one request outside its
// buffer at a time, so the queue holds at most one entry per connection.
type queue struct {
	mu     sync.Mutex
	cond   sync.Cond
	items  []*conn
	head   int
	closed bool
}

func (q *queue) init() { q.cond.L = &q.mu }

func (q *queue) push(c *conn) {
	q.mu.Lock()
	q.items = append(q.items, c)
	q.mu.Unlock()
	q.cond.Signal()
}

// pop returns the oldest entry, waiting for one; nil once closed.
func (q *queue) pop() *conn {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head == len(q.items) && !q.closed {
		q.cond.Wait()
	}
	if q.head == len(q.items) {
		return nil
	}
	c := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	switch {
	case q.head == len(q.items): // empty: reuse the slice from its start
		q.items, q.head = q.items[:0], 0
	case q.head >= 64 && 2*q.head >= len(q.items):
		// Never empty (an overload): move what waits to the front, or
		// append would keep the taken half's room forever.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return c
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// conn is one client connection.
type conn struct {
	srv    *Server
	nc     net.Conn
	rc     syscall.RawConn
	fd     int
	remote string
	ctx    context.Context

	mu       sync.Mutex
	buf      []byte // bytes read and not yet framed into a request
	f        framer
	busy     bool // a request is queued or being served
	requests int  // requests framed so far
	paused   bool // reading stopped: the buffer is full while busy
	eof      bool // the peer is done sending (or the connection failed)
	closed   bool
	since    time.Time          // first byte of a partial request, or the start of idleness
	req      *http.Request      // the request handed to a worker
	cancel   context.CancelFunc // of the request being served
}

// frameError is a request the server refuses before the handler: status
// and a plain-text reason, then the connection closes.
type frameError struct {
	status int
	reason string
}

func (e *frameError) Error() string { return strconv.Itoa(e.status) + " " + e.reason }

func refuse(status int, reason string) error { return &frameError{status, reason} }

// framer turns a connection's bytes into requests. It keeps the parsed
// header of a request whose body has not all arrived.
type framer struct {
	req       *http.Request // header parsed, body pending
	hdrLen    int           // bytes of the pending request's line and header
	continued bool          // 100 Continue sent for req
}

var crlf2 = []byte("\r\n\r\n")

// next frames the request at the start of buf. It returns the request and
// the bytes it took, or (nil, 0, nil) while more bytes are needed, or a
// *frameError. sendContinue, if not nil, is called once for a request that
// asked for "100-continue" and whose body has not arrived.
func (f *framer) next(buf []byte, maxHeader int, maxBody int64, sendContinue func()) (*http.Request, int, error) {
	if f.req == nil {
		// RFC 9112 §2.2: ignore empty lines before a request line.
		skip := 0
		for len(buf)-skip >= 2 && buf[skip] == '\r' && buf[skip+1] == '\n' {
			skip += 2
		}
		end := bytes.Index(buf[skip:], crlf2)
		if end < 0 {
			if len(buf) > maxHeader {
				return nil, 0, refuse(http.StatusRequestHeaderFieldsTooLarge, "request header too large")
			}
			return nil, 0, nil
		}
		hdrLen := skip + end + len(crlf2)
		if hdrLen > maxHeader {
			return nil, 0, refuse(http.StatusRequestHeaderFieldsTooLarge, "request header too large")
		}
		req, err := parseHeader(buf[skip:hdrLen])
		if err != nil {
			return nil, 0, err
		}
		f.req, f.hdrLen, f.continued = req, hdrLen, false
	}
	req := f.req
	var body []byte
	var n int
	switch {
	case len(req.TransferEncoding) > 0: // "chunked", parseHeader made sure
		b, used, err := dechunk(buf[f.hdrLen:], maxBody)
		if err != nil {
			f.req = nil
			return nil, 0, err
		}
		if used < 0 {
			f.maybeContinue(sendContinue)
			return nil, 0, nil
		}
		body, n = b, f.hdrLen+used
	case req.ContentLength > maxBody:
		f.req = nil
		return nil, 0, refuse(http.StatusRequestEntityTooLarge, "request body too large")
	default:
		n = f.hdrLen + int(req.ContentLength)
		if len(buf) < n {
			f.maybeContinue(sendContinue)
			return nil, 0, nil
		}
		if req.ContentLength > 0 {
			body = bytes.Clone(buf[f.hdrLen:n])
		}
	}
	f.req = nil
	if body == nil {
		req.Body = http.NoBody
	} else {
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	req.ContentLength = int64(len(body))
	req.TransferEncoding = nil
	req.Header.Del("Expect")
	return req, n, nil
}

func (f *framer) maybeContinue(send func()) {
	if f.continued || send == nil || !strings.EqualFold(f.req.Header.Get("Expect"), "100-continue") {
		return
	}
	f.continued = true
	send()
}

// parseHeader parses a request line and header (ending in an empty line)
// with net/http's parser, then applies the checks net/http's server makes
// after it, and refuses what this server does not do.
func parseHeader(hdr []byte) (*http.Request, error) {
	req, err := http.ReadRequest(bufio.NewReaderSize(bytes.NewReader(hdr), len(hdr)))
	if err != nil {
		if strings.Contains(err.Error(), "unsupported transfer encoding") {
			return nil, refuse(http.StatusNotImplemented, "unsupported transfer coding")
		}
		return nil, refuse(http.StatusBadRequest, "malformed request")
	}
	if req.ProtoMajor != 1 {
		return nil, refuse(http.StatusHTTPVersionNotSupported, "HTTP/1.x only")
	}
	hosts, haveHost := req.Header["Host"]
	if req.ProtoAtLeast(1, 1) && !haveHost && req.Host == "" {
		return nil, refuse(http.StatusBadRequest, "missing required Host header")
	}
	if len(hosts) > 1 || (req.Host != "" && !httpguts.ValidHostHeader(req.Host)) {
		return nil, refuse(http.StatusBadRequest, "invalid Host header")
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, refuse(http.StatusBadRequest, "invalid header name")
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, refuse(http.StatusBadRequest, "invalid header value")
			}
		}
	}
	delete(req.Header, "Host")
	if len(req.TransferEncoding) > 0 {
		if len(req.TransferEncoding) != 1 || req.TransferEncoding[0] != "chunked" {
			return nil, refuse(http.StatusNotImplemented, "unsupported transfer coding")
		}
		// net/http drops a Content-Length sent with chunked; RFC 9112
		// §6.3 says such a message ought to be handled as an error (it
		// is how requests are smuggled past proxies).
		if bytes.Contains(bytes.ToLower(hdr), []byte("\ncontent-length:")) {
			return nil, refuse(http.StatusBadRequest, "both Content-Length and Transfer-Encoding")
		}
	}
	if e := req.Header.Get("Expect"); e != "" && !strings.EqualFold(e, "100-continue") {
		return nil, refuse(http.StatusExpectationFailed, "unsupported Expect")
	}
	return req, nil
}

// dechunk decodes a chunked body (and skips its trailer section) from the
// start of b. It returns the body and the bytes it took, used < 0 while b
// holds only part of it, or a *frameError.
func dechunk(b []byte, maxBody int64) (body []byte, used int, err error) {
	// An encoded body is its data plus a few bytes per chunk; bound what
	// may be buffered while waiting for its end the same way.
	limit := 2*maxBody + 4096
	rd := bytes.NewReader(b)
	br := bufio.NewReaderSize(rd, 4096)
	var out bytes.Buffer
	_, err = io.Copy(&out, io.LimitReader(httputil.NewChunkedReader(br), maxBody+1))
	switch {
	case int64(out.Len()) > maxBody:
		return nil, 0, refuse(http.StatusRequestEntityTooLarge, "request body too large")
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		if int64(len(b)) > limit {
			return nil, 0, refuse(http.StatusRequestEntityTooLarge, "request body too large")
		}
		return nil, -1, nil
	case err != nil:
		return nil, 0, refuse(http.StatusBadRequest, "malformed chunked body")
	}
	// Trailer fields: lines up to an empty one; they are not passed on.
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if int64(len(b)) > limit {
				return nil, 0, refuse(http.StatusRequestEntityTooLarge, "request body too large")
			}
			return nil, -1, nil
		}
		if len(line) > 4096 {
			return nil, 0, refuse(http.StatusBadRequest, "trailer line too long")
		}
		if bytes.Equal(line, []byte("\r\n")) || bytes.Equal(line, []byte("\n")) {
			break
		}
	}
	used = len(b) - rd.Len() - br.Buffered()
	return out.Bytes(), used, nil
}

// response buffers what a handler writes.
type response struct {
	req         *http.Request
	header      http.Header
	status      int
	wroteHeader bool
	body        []byte
	headLen     int64                           // bytes written in answer to HEAD (not kept)
	informal    func(status int, h http.Header) // writes a 1xx response at once
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.wroteHeader {
		return
	}
	if code < 200 {
		if code != http.StatusContinue && code != http.StatusSwitchingProtocols && w.informal != nil {
			w.informal(code, w.header)
		}
		return
	}
	w.wroteHeader, w.status = true, code
}

func (w *response) Write(p []byte) (int, error) { return writeBody(w, p) }

func (w *response) WriteString(p string) (int, error) { return writeBody(w, p) }

// writeBody buffers p, as Write and WriteString.
func writeBody[T []byte | string](w *response, p T) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.req.Method == http.MethodHead {
		w.headLen += int64(len(p))
	} else {
		w.body = append(w.body, p...)
	}
	return len(p), nil
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// These headers are the server's to write.
var serverHeaders = map[string]bool{"Connection": true, "Transfer-Encoding": true, "Keep-Alive": true}

// appendResponse appends the HTTP/1.1 response w buffered to out.
// keepAlive10 answers an HTTP/1.0 client that asked to keep the connection.
func appendResponse(out []byte, w *response, closing, keepAlive10 bool) []byte {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	out = appendStatusLine(out, w.status)
	h := w.header
	if _, ok := h["Date"]; !ok {
		out = append(out, "Date: "...)
		out = append(out, httpDate()...)
		out = append(out, "\r\n"...)
	}
	if bodyAllowed(w.status) {
		if _, ok := h["Content-Type"]; !ok && len(w.body) > 0 {
			out = append(out, "Content-Type: "...)
			out = append(out, http.DetectContentType(w.body)...)
			out = append(out, "\r\n"...)
		}
		// The length is what was written; a HEAD response's, what would
		// have been (or what the handler says the GET's is).
		n := int64(len(w.body))
		if w.req.Method == http.MethodHead {
			n = w.headLen
		}
		if w.req.Method != http.MethodHead || h.Get("Content-Length") == "" {
			out = append(out, "Content-Length: "...)
			out = strconv.AppendInt(out, n, 10)
			out = append(out, "\r\n"...)
		}
	}
	for k, vv := range h {
		if serverHeaders[k] || k == "Content-Length" && (w.req.Method != http.MethodHead || !bodyAllowed(w.status)) {
			continue
		}
		for _, v := range vv {
			out = appendHeader(out, k, v)
		}
	}
	switch {
	case closing:
		out = append(out, "Connection: close\r\n"...)
	case keepAlive10:
		out = append(out, "Connection: keep-alive\r\n"...)
	}
	out = append(out, "\r\n"...)
	return append(out, w.body...)
}

// appendHeader appends "k: v\r\n", with the line breaks net/http also
// replaces (a handler's header value must not start a new header).
func appendHeader(out []byte, k, v string) []byte {
	out = append(out, k...)
	out = append(out, ": "...)
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\r', '\n':
			out = append(out, ' ')
		default:
			out = append(out, c)
		}
	}
	return append(out, "\r\n"...)
}

func appendStatusLine(out []byte, status int) []byte {
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(status), 10)
	out = append(out, ' ')
	out = append(out, http.StatusText(status)...)
	return append(out, "\r\n"...)
}

// refusal is the response to a *frameError.
func refusal(e *frameError) []byte {
	out := appendStatusLine(nil, e.status)
	out = append(out, "Date: "...)
	out = append(out, httpDate()...)
	out = append(out, "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(e.reason)), 10)
	out = append(out, "\r\n\r\n"...)
	return append(out, e.reason...)
}

// httpDate is time.Now in http.TimeFormat, formatted once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := cachedDate.Load(); d != nil && d.unix == now {
		return d.text
	}
	d := &dateText{now, time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.text
}

type dateText struct {
	unix int64
	text string
}

var cachedDate atomic.Pointer[dateText]

// connContext is the base of a connection's request contexts: base with
// the local address, as net/http sets it.
func connContext(base context.Context, local any) context.Context {
	return context.WithValue(base, http.LocalAddrContextKey, local)
}
