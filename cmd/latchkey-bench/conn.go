package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// doer sends one request and returns its response: an *http.Client, or a
// worker's connClient.
type doer interface {
	Do(req *http.Request) (*http.Response, error)
}

// connClient is one load worker's HTTP/1.1 keep-alive connection, used by
// that worker alone: Do writes the request and reads the response in the
// caller's goroutine.
//
// net/http's Transport runs two goroutines per connection, one writing
// requests and one reading responses, and hands each request and response
// between them and the caller over channels: three goroutines per request
// to schedule on the load tool's one core. At 64 workers that scheduling
// showed in the measured latencies — p99/p50 at c=64 was ~0.15 higher than
// wrk measured for the same server in alternated runs (docs/BENCHMARKS.md,
// session 12). The tool's sign-ins and the code flow keep net/http
// (cookies, redirects); the refresh and introspection loops use this.
type connClient struct {
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	timeout time.Duration // per request, as http.Client.Timeout

	addr string // host:port of conn
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
}

func newConnClient(timeout time.Duration) *connClient {
	return &connClient{dial: loopbackDialer().DialContext, timeout: timeout}
}

// Do sends req on the worker's connection (dialling it first if needed)
// and returns the response. The caller must read the body to its end or
// close it before the next Do; closing drains what is left, so that the
// connection can carry the next request.
func (c *connClient) Do(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" {
		return nil, fmt.Errorf("connClient: %s is not plain http", req.URL.Redacted())
	}
	ctx := req.Context()
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	if c.conn != nil && c.addr != addr {
		c.Close()
	}
	if c.conn == nil {
		conn, err := c.dial(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		c.conn, c.addr = conn, addr
		c.br, c.bw = bufio.NewReaderSize(conn, 16<<10), bufio.NewWriterSize(conn, 4<<10)
	}
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		c.Close()
		return nil, err
	}
	// A cancelled context interrupts a blocked read or write at once.
	conn := c.conn
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	resp, err := c.exchange(req)
	if !stop() && err == nil {
		// The context ended just as the response arrived: the deadline is
		// in the past now, so the connection cannot carry another request.
		err = ctx.Err()
		resp.Body.Close()
		resp = nil
	}
	if err != nil {
		c.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
		return nil, err
	}
	return resp, nil
}

func (c *connClient) exchange(req *http.Request) (*http.Response, error) {
	if err := req.Write(c.bw); err != nil {
		return nil, err
	}
	if err := c.bw.Flush(); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(c.br, req)
	if err != nil {
		return nil, err
	}
	resp.Body = &connBody{ReadCloser: resp.Body, c: c, keep: !resp.Close && !req.Close}
	return resp, nil
}

// Close closes the connection; the next Do dials a new one.
func (c *connClient) Close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.br, c.bw = nil, nil, nil
	}
}

// connBody is a response body on a connClient's connection: closing it
// drains the rest, and closes the connection if the server will not take
// another request on it or the body could not be read to its end.
type connBody struct {
	io.ReadCloser
	c    *connClient
	keep bool
	done bool
}

func (b *connBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	_, err := io.Copy(io.Discard, io.LimitReader(b.ReadCloser, 1<<20))
	if err == nil {
		// More than 1 MiB left: not worth reading to keep the connection.
		var one [1]byte
		if n, _ := b.ReadCloser.Read(one[:]); n > 0 {
			err = errors.New("response body over 1 MiB")
		}
	}
	b.ReadCloser.Close()
	if err != nil || !b.keep {
		b.c.Close()
	}
	return err
}
