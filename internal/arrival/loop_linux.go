package arrival

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/sys/unix"
)

// poller is the server's own epoll instance. Its descriptor is itself
// registered with Go's network poller (os.NewFile of a non-blocking
// descriptor), so the event loop waits for it the way a goroutine waits
// for a socket: parked, holding no thread and no P. Only readiness is
// waited for that way; the events are taken with epoll_wait(0).
type poller struct {
	file   *os.File
	raw    syscall.RawConn
	events [256]unix.EpollEvent
}

func (p *poller) open() error {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return os.NewSyscallError("fcntl", err)
	}
	p.file = os.NewFile(uintptr(fd), "arrival-epoll")
	p.raw, err = p.file.SyscallConn()
	if err != nil {
		p.file.Close()
		return err
	}
	return nil
}

// add watches fd for input, edge-triggered: the ready list then holds each
// connection once, in the order its bytes arrived.
func (p *poller) add(fd int) error {
	var err error
	cerr := p.raw.Control(func(efd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
		err = unix.EpollCtl(int(efd), unix.EPOLL_CTL_ADD, fd, &ev)
	})
	if cerr != nil {
		return cerr
	}
	return os.NewSyscallError("epoll_ctl", err)
}

// wait returns the next events, parking until there are some; an error
// once the poller is closed.
func (p *poller) wait() ([]unix.EpollEvent, error) {
	var n int
	var werr error
	err := p.raw.Read(func(efd uintptr) bool {
		for {
			n, werr = unix.EpollWait(int(efd), p.events[:], 0)
			if werr != unix.EINTR {
				return n > 0 || werr != nil
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if werr != nil {
		return nil, os.NewSyscallError("epoll_wait", werr)
	}
	return p.events[:n], nil
}

func (p *poller) close() { p.file.Close() }

// Serve accepts connections on ln and serves them until Shutdown or a
// failure of ln. It always returns an error: http.ErrServerClosed after
// Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.init(); err != nil {
		return err
	}
	if err := s.loop.open(); err != nil {
		close(s.done)
		return err
	}
	var wg sync.WaitGroup
	wg.Go(s.eventLoop)
	for range s.workers() {
		wg.Go(s.work)
	}
	wg.Go(s.sweep)
	s.mu.Lock()
	s.ln = ln
	stopped := s.shutdown.Load()
	s.mu.Unlock()
	var err error
	if stopped {
		ln.Close()
		err = http.ErrServerClosed
	} else {
		err = s.accept(ln)
	}
	if !s.shutdown.Load() {
		// ln failed: nothing will call Shutdown to stop the rest.
		s.stop()
	}
	go func() { wg.Wait(); close(s.done) }()
	return err
}

// accept registers every new connection with the poller, until ln is
// closed.
func (s *Server) accept(ln net.Listener) error {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				// As net/http: out of descriptors or similar, wait and retry.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log().Warn("http: accept failed; retrying", "error", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
				case <-s.closing:
				}
				continue
			}
			return err
		}
		backoff = 0
		if err := s.track(nc); err != nil {
			nc.Close()
		}
	}
}

// track makes nc one of the server's connections.
func (s *Server) track(nc net.Conn) error {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return errors.New("arrival: listener's connections have no descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	c := &conn{srv: s, nc: nc, rc: rc, remote: nc.RemoteAddr().String(), since: time.Now()}
	c.ctx = connContext(context.Background(), nc.LocalAddr())
	c.buf = make([]byte, 0, connBufSize)
	var addErr error
	cerr := rc.Control(func(fd uintptr) {
		c.fd = int(fd)
		s.mu.Lock()
		if s.shutdown.Load() {
			s.mu.Unlock()
			addErr = http.ErrServerClosed
			return
		}
		s.conns[c.fd] = c
		s.mu.Unlock()
		// Bytes that came before this call are reported at once.
		if addErr = s.loop.add(c.fd); addErr != nil {
			s.mu.Lock()
			delete(s.conns, c.fd)
			s.mu.Unlock()
		}
	})
	if cerr != nil {
		return cerr
	}
	return addErr
}

// eventLoop reads connections in the order the poller reports them.
func (s *Server) eventLoop() {
	for {
		evs, err := s.loop.wait()
		if err != nil {
			return
		}
		for _, ev := range evs {
			s.mu.Lock()
			c := s.conns[int(ev.Fd)]
			s.mu.Unlock()
			if c != nil {
				c.readable()
			}
		}
	}
}

// work serves queued requests until the queue closes.
func (s *Server) work() {
	for {
		c := s.queue.pop()
		if c == nil {
			return
		}
		c.serve()
	}
}

// sweep closes connections past their timeouts.
func (s *Server) sweep() {
	every := time.Second
	for _, d := range []time.Duration{s.ReadHeaderTimeout, s.ReadTimeout, s.idleTimeout()} {
		if d > 0 {
			every = min(every, max(d/4, 5*time.Millisecond))
		}
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var list []*conn
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
		now := time.Now()
		list = s.snapshot(list[:0])
		for _, c := range list {
			c.mu.Lock()
			if !c.busy && !c.closed && s.expired(c, now) {
				c.closeLocked()
			}
			c.mu.Unlock()
		}
		clear(list)
	}
}

func (s *Server) snapshot(list []*conn) []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		list = append(list, c)
	}
	return list
}

// expired reports whether c, not busy, has waited too long: for the rest
// of a request, or idle for the next one. Caller holds c.mu.
func (s *Server) expired(c *conn, now time.Time) bool {
	var limit time.Duration
	switch {
	case len(c.buf) == 0 && c.f.req == nil && c.requests > 0:
		limit = s.idleTimeout()
	case c.f.req == nil: // a request's header, or a new connection's first byte (as net/http)
		limit = s.ReadHeaderTimeout
		if limit == 0 {
			limit = s.ReadTimeout
		}
	default:
		limit = s.ReadTimeout
	}
	return limit > 0 && now.Sub(c.since) > limit
}

// Shutdown stops accepting, closes idle connections, waits for the
// requests in flight to be answered (each connection closes after its
// answer), then stops the server. If ctx ends first it closes every
// connection and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.shutdown.Swap(true) {
		s.mu.Unlock()
		return nil
	}
	if !s.started {
		s.mu.Unlock()
		return nil
	}
	close(s.closing)
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	var list []*conn
	for _, c := range s.snapshot(list) {
		c.mu.Lock()
		if !c.busy {
			c.closeLocked()
		}
		c.mu.Unlock()
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	var err error
	for {
		s.mu.Lock()
		n := s.inFlight
		s.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-t.C:
			continue
		}
		break
	}
	s.stop()
	select {
	case <-s.done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// stop closes every connection and ends the event loop, the workers (after
// their current request) and the sweeper.
func (s *Server) stop() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		if !s.shutdown.Swap(true) {
			close(s.closing)
		}
		s.mu.Unlock()
		s.loop.close()
		s.queue.close()
		for _, c := range s.snapshot(nil) {
			c.mu.Lock()
			c.closeLocked()
			c.mu.Unlock()
		}
	})
}

// readable handles the poller's report that c has input.
func (c *conn) readable() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.fill()
	if c.eof && c.cancel != nil {
		c.cancel() // as net/http: the client is gone, so is its request's context
	}
	c.advance()
}

// connBufSize is a connection's buffer to begin with: a token request and
// its headers fit.
const connBufSize = 4096

// readLimit is how much c buffers while a request is being served (more
// waits in the kernel): enough for any request that will not be refused.
func (c *conn) readLimit() int {
	return c.srv.maxHeaderBytes() + int(2*c.srv.maxBodyBytes()) + 8192
}

// fill reads what the kernel holds for c. Caller holds c.mu.
func (c *conn) fill() {
	limit := c.readLimit()
	for !c.eof {
		if len(c.buf) >= limit {
			c.paused = true
			return
		}
		if cap(c.buf)-len(c.buf) < 1024 {
			nb := make([]byte, len(c.buf), min(2*cap(c.buf)+4096, limit+4096))
			copy(nb, c.buf)
			c.buf = nb
		}
		free := c.buf[len(c.buf):cap(c.buf)]
		var n int
		var err error
		if rerr := c.rc.Read(func(fd uintptr) bool {
			n, err = unix.Read(int(fd), free)
			return true
		}); rerr != nil {
			c.eof = true
			return
		}
		switch {
		case n > 0:
			if len(c.buf) == 0 && !c.busy && c.f.req == nil {
				c.since = time.Now() // a request starts
			}
			c.buf = c.buf[:len(c.buf)+n]
			if n < len(free) {
				return // the kernel had no more (epoll(7): a short read drains)
			}
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return
		default: // end of stream, or a reset
			c.eof = true
		}
	}
}

// advance frames c's next request and queues it, unless one is in flight;
// closes c if it is done. Caller holds c.mu.
func (c *conn) advance() {
	if c.busy || c.closed {
		return
	}
	s := c.srv
	if len(c.buf) > 0 {
		req, n, err := c.f.next(c.buf, s.maxHeaderBytes(), s.maxBodyBytes(), c.sendContinue)
		if err != nil {
			var fe *frameError
			errors.As(err, &fe)
			c.refuseLocked(fe)
			return
		}
		if req != nil {
			c.buf = c.buf[:copy(c.buf, c.buf[n:])]
			if len(c.buf) == 0 && cap(c.buf) > 4*connBufSize {
				c.buf = make([]byte, 0, connBufSize) // a large request's buffer is not kept
			}
			c.req, c.busy = req, true
			c.requests++
			s.mu.Lock()
			s.inFlight++
			s.mu.Unlock()
			s.queue.push(c)
			return
		}
	}
	if c.eof {
		c.closeLocked()
	}
}

// sendContinue answers "Expect: 100-continue" before the body arrives.
// Nothing else is being written to c (no request is in flight), so the
// socket's buffer takes the 25 bytes at once.
func (c *conn) sendContinue() {
	msg := []byte("HTTP/1.1 100 Continue\r\n\r\n")
	_ = c.rc.Write(func(fd uintptr) bool {
		_, _ = unix.Write(int(fd), msg)
		return true
	})
}

// refuseLocked answers a request refused before the handler, then closes
// c: the client may still be sending, so the socket is half-closed and
// drained a moment first, as net/http does, lest the unread bytes reset the
// connection before the answer is read. Caller holds c.mu.
func (c *conn) refuseLocked(fe *frameError) {
	c.closed = true
	s := c.srv
	s.mu.Lock()
	if s.conns[c.fd] == c {
		delete(s.conns, c.fd)
	}
	s.mu.Unlock()
	nc := c.nc
	go func() {
		_ = nc.SetDeadline(time.Now().Add(time.Second))
		if _, err := nc.Write(refusal(fe)); err == nil {
			if tc, ok := nc.(interface{ CloseWrite() error }); ok {
				_ = tc.CloseWrite()
				_ = nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				var sink [1024]byte
				for {
					if _, err := nc.Read(sink[:]); err != nil {
						break
					}
				}
			}
		}
		nc.Close()
	}()
}

// closeLocked closes c. Caller holds c.mu.
func (c *conn) closeLocked() {
	if c.closed {
		return
	}
	c.closed = true
	if c.cancel != nil {
		c.cancel()
	}
	s := c.srv
	s.mu.Lock()
	if s.conns[c.fd] == c {
		delete(s.conns, c.fd)
	}
	s.mu.Unlock()
	c.nc.Close()
}

var outPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// serve runs the handler for c's queued request and writes the answer.
func (c *conn) serve() {
	s := c.srv
	c.mu.Lock()
	req := c.req
	ctx, cancel := context.WithCancel(c.ctx)
	c.cancel = cancel
	eof := c.eof
	c.mu.Unlock()
	if eof {
		cancel()
	}
	req = req.WithContext(ctx)
	req.RemoteAddr = c.remote
	bp := outPool.Get().(*[]byte)
	w := &response{req: req, header: make(http.Header), body: (*bp)[:0], informal: c.writeInformational}
	ok := s.run(w, req)
	cancel()
	closing := !ok || req.Close || s.shutdown.Load() || httpguts.HeaderValuesContainsToken(w.header["Connection"], "close")
	keepAlive10 := !req.ProtoAtLeast(1, 1) && !closing
	ob := outPool.Get().(*[]byte)
	out := appendResponse((*ob)[:0], w, closing, keepAlive10)
	*bp = w.body[:0]
	outPool.Put(bp)
	failed := false
	if ok {
		if s.WriteTimeout > 0 {
			_ = c.nc.SetWriteDeadline(time.Now().Add(s.WriteTimeout))
		}
		_, err := c.nc.Write(out)
		failed = err != nil
	}
	if cap(out) <= 64<<10 {
		*ob = out[:0]
		outPool.Put(ob)
	}
	c.finish(closing || failed)
}

// writeInformational writes a 1xx response (such as 103 Early Hints) while
// the handler runs.
func (c *conn) writeInformational(status int, h http.Header) {
	out := appendStatusLine(nil, status)
	for k, vv := range h {
		for _, v := range vv {
			out = appendHeader(out, k, v)
		}
	}
	out = append(out, "\r\n"...)
	if c.srv.WriteTimeout > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.WriteTimeout))
	}
	_, _ = c.nc.Write(out)
}

// run calls the handler; false if it panicked (the connection then closes
// without an answer, as net/http does).
func (s *Server) run(w *response, req *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			ok = false
			if v != http.ErrAbortHandler {
				s.log().Error("http: panic serving", "remote_addr", req.RemoteAddr, "panic", v, "stack", string(debug.Stack()))
			}
		}
	}()
	s.Handler.ServeHTTP(w, req)
	return true
}

// finish ends c's request: the next one is framed, or c closes.
func (c *conn) finish(closing bool) {
	s := c.srv
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy, c.req, c.cancel, c.since = false, nil, nil, time.Now()
	s.mu.Lock()
	s.inFlight--
	s.mu.Unlock()
	// Shutdown closes the connections that are not busy when it begins;
	// this one was, so it closes here.
	if closing || s.shutdown.Load() {
		c.closeLocked()
		return
	}
	if c.paused {
		c.paused = false
		c.fill()
	}
	c.advance()
}
