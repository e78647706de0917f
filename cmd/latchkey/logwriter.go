package main

import (
	"io"
	"sync"
	"time"
)

// Log output of `latchkey serve` (docs/observability.md, "Logs").
//
// Under load the server writes two log lines per token request (the audit
// event and the access line). Written straight to stderr, that is a write
// system call per line on the request's goroutine: ~2.7 % of the server's
// CPU at 4,800 refreshes/s, and a request waits whenever the log's reader
// (a pipe to journald or a container runtime, a file on a busy disk) is
// slow. logWriter collects lines in memory and writes them from one
// goroutine at most every logFlushDelay, as one write of many lines.
//
// Nothing is dropped: when logBufferMax bytes are waiting (the reader is
// slower than the server), the writer that overflows writes them itself,
// in order, and other loggers wait for it, as they would unbuffered. On a
// crash that skips the deferred Close (a fatal runtime error, SIGKILL) the
// lines of the last logFlushDelay are lost; the audit trail is in the
// database (audit_events), not only in the log.
const (
	logFlushDelay = 10 * time.Millisecond
	logBufferMax  = 256 << 10
)

type logWriter struct {
	out io.Writer

	mu     sync.Mutex // guards buf and spare; taken before wmu
	buf    []byte     // lines not yet handed to out
	spare  []byte     // the other buffer, empty, for the next swap
	closed bool       // Close was called: write at once

	wmu sync.Mutex // serializes writes to out, so lines keep their order

	wake   chan struct{} // buf became non-empty (capacity 1)
	done   chan struct{} // closed by Close
	exited chan struct{} // closed when the flusher has written everything
	once   sync.Once
}

// newLogWriter starts a logWriter on out; Close it to write what is left.
func newLogWriter(out io.Writer) *logWriter {
	w := &logWriter{
		out:    out,
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	go w.flusher()
	return w
}

// Write queues p (one log record: slog hands each record to one Write) and
// returns at once unless logBufferMax bytes are already waiting. It always
// reports success: a log line that cannot be written has nowhere to report
// the failure to.
func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	wasEmpty := len(w.buf) == 0
	w.buf = append(w.buf, p...)
	if w.closed || len(w.buf) >= logBufferMax {
		w.flushLocked()
		return len(p), nil
	}
	w.mu.Unlock()
	if wasEmpty {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// flushLocked writes the buffered lines. It is called with mu held and
// returns with it released; it takes wmu before releasing mu, so two
// flushes write in the order they took their buffers.
func (w *logWriter) flushLocked() {
	full := w.buf
	w.buf, w.spare = w.spare[:0], nil
	w.wmu.Lock()
	w.mu.Unlock()
	if len(full) > 0 {
		_, _ = w.out.Write(full)
	}
	w.wmu.Unlock()
	if cap(full) <= 2*logBufferMax { // keep it for the next swap
		w.mu.Lock()
		if w.spare == nil {
			w.spare = full[:0]
		}
		w.mu.Unlock()
	}
}

func (w *logWriter) flusher() {
	defer close(w.exited)
	t := time.NewTimer(0)
	<-t.C
	for {
		select {
		case <-w.wake:
		case <-w.done:
			w.mu.Lock()
			w.flushLocked()
			return
		}
		// Let more lines gather, then write them all at once.
		t.Reset(logFlushDelay)
		select {
		case <-t.C:
		case <-w.done:
		}
		w.mu.Lock()
		w.flushLocked()
	}
}

// Close writes every line written before it and stops the flusher. Lines
// written after Close are written at once, unbuffered.
func (w *logWriter) Close() error {
	w.once.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		close(w.done)
		<-w.exited
	})
	return nil
}
