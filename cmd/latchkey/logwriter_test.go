package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a sink that records each Write it gets, and can be slowed.
type syncBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	delay  time.Duration
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	time.Sleep(b.delay)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.buf.Write(p)
}

func (b *syncBuffer) snapshot() (string, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.writes
}

// Many goroutines log at once into a slow sink, enough to overflow the
// buffer many times: after Close every line is there exactly once, whole,
// and each goroutine's lines are in the order it wrote them.
func TestLogWriterOrderAndCompleteness(t *testing.T) {
	sink := &syncBuffer{delay: time.Millisecond}
	w := newLogWriter(sink)
	const writers, lines = 8, 3000
	pad := strings.Repeat("x", 100)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(w, "g%d %06d %s\n", g, i, pad)
			}
		})
	}
	wg.Wait()
	w.Close()

	out, writes := sink.snapshot()
	next := make([]int, writers)
	n := 0
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var g, i int
		var rest string
		if _, err := fmt.Sscanf(line, "g%d %d %s", &g, &i, &rest); err != nil || rest != pad || g < 0 || g >= writers {
			t.Fatalf("line %d is not a whole line: %q", n, line)
		}
		if i != next[g] {
			t.Fatalf("writer %d: line %d after line %d", g, i, next[g]-1)
		}
		next[g]++
		n++
	}
	if n != writers*lines {
		t.Fatalf("%d lines, want %d", n, writers*lines)
	}
	// The point of the buffer: many lines per write to the sink.
	if writes*10 > n {
		t.Errorf("%d writes for %d lines; want batches", writes, n)
	}
}

// A lone line reaches the sink without Close, after about logFlushDelay.
func TestLogWriterFlushesWhenIdle(t *testing.T) {
	sink := &syncBuffer{}
	w := newLogWriter(sink)
	defer w.Close()
	deadline := time.Now().Add(5 * time.Second)
	want := ""
	for _, line := range []string{"one\n", "two\n"} { // two: after the flusher went back to waiting
		fmt.Fprint(w, line)
		want += line
		for {
			if out, _ := sink.snapshot(); out == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%q was not written within 5 s", want)
			}
			time.Sleep(logFlushDelay / 2)
		}
	}
}

// Close writes what is buffered; a line written after Close goes straight
// to the sink; Close twice is harmless.
func TestLogWriterClose(t *testing.T) {
	sink := &syncBuffer{}
	w := newLogWriter(sink)
	fmt.Fprintln(w, "before")
	w.Close()
	if out, _ := sink.snapshot(); out != "before\n" {
		t.Fatalf("after Close: %q", out)
	}
	fmt.Fprintln(w, "after")
	if out, _ := sink.snapshot(); out != "before\nafter\n" {
		t.Fatalf("a line after Close: %q", out)
	}
	w.Close()
}
