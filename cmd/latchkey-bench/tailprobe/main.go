// Command tailprobe measures how much of the token endpoint's tail latency
// a Go HTTP server has before it does any work of its own: a server that
// spends a fixed amount of CPU per request (SHA-256 in a loop, no database;
// optionally -alloc bytes of garbage per request and -live MiB of heap kept
// live, to show the collector's share), served either by net/http (one
// goroutine per connection, Go's network poller) or by an event loop that
// reads and answers every connection on one goroutine in the order epoll
// reports them (github.com/lesismal/nbio), and a closed-loop load generator
// that reports the median and p99 latency. With -sync FILE each request
// also waits, before it is answered, for a group commit: one goroutine
// appends every waiting request's -syncbytes to FILE and fsyncs it,
// then releases them all: a server whose every commit waits for the
// machine's disk (Latchkey's SQLite commits do not sync; its checkpoints
// do, docs/BENCHMARKS.md, session 13).
//
//	tailprobe serve -mode nethttp|loop-et|loop-lt|loop-pool [-addr A] [-work 150µs] [-alloc B] [-live MiB] [-sync FILE [-syncbytes B]]
//	tailprobe load [-url U] [-c 16] [-d 10s] [-warmup 2s]
//
// It is its own module so that the event-loop library stays out of
// Latchkey's dependencies; run.sh builds it and runs the comparison
// recorded in docs/BENCHMARKS.md ("Session 8").
package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tailprobe serve|load [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "load":
		err = load(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (serve, load)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tailprobe:", err)
		os.Exit(1)
	}
}

// burn spends d of wall-clock time hashing: the stand-in for a handler's
// CPU work.
func burn(d time.Duration) {
	var b [32]byte
	for end := time.Now().Add(d); time.Now().Before(end); {
		for range 20 {
			b = sha256.Sum256(b[:])
		}
	}
}

// hashes does n SHA-256 rounds: a fixed amount of CPU work, which takes
// longer when the CPU is slower (on a VM, while the host is busy).
func hashes(n int) {
	var b [32]byte
	for range n {
		b = sha256.Sum256(b[:])
	}
	hashSink.Store(int32(b[0]))
}

// hashSink keeps hashes' result live (so its loop is not optimized away).
var hashSink atomic.Int32

// worker returns the handler's CPU work. "time" burns d of wall-clock time,
// whatever the CPU's speed; "fixed" does the number of hashes that took d
// at start (the fastest of several calibrations), so that, like a real
// handler, it slows down when the machine does.
func worker(kind string, d time.Duration) (func(), error) {
	switch kind {
	case "time":
		return func() { burn(d) }, nil
	case "fixed":
		const probe = 2000
		best := time.Duration(1 << 62)
		for range 10 {
			t := time.Now()
			hashes(probe)
			best = min(best, time.Since(t))
		}
		n := max(1, int(int64(probe)*int64(d)/int64(max(best, 1))))
		return func() { hashes(n) }, nil
	}
	return nil, fmt.Errorf("unknown burn %q (want time or fixed)", kind)
}

// node is a heap object with a pointer, so that the collector has to
// follow it.
type node struct {
	next *node
	_    [88]byte
}

var (
	live *node                // keepLive's objects
	sink atomic.Pointer[node] // the last request's garbage, so that it is heap-allocated
)

// keepLive holds mib MiB of linked objects for the life of the process.
func keepLive(mib int) {
	for range mib << 20 / int(unsafe.Sizeof(node{})) {
		live = &node{next: live}
	}
}

// allocate makes n bytes of linked objects that die with the request.
func allocate(n int) {
	var head *node
	for range n / int(unsafe.Sizeof(node{})) {
		head = &node{next: head}
	}
	sink.Store(head)
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	mode := fs.String("mode", "nethttp", "nethttp, loop-et (edge-triggered event loop, handler inline), loop-lt (level-triggered, inline) or loop-pool (level-triggered, handlers on nbio's goroutine pool)")
	addr := fs.String("addr", "127.0.0.1:9099", "listen address")
	work := fs.Duration("work", 150*time.Microsecond, "CPU time per request")
	garbage := fs.Int("alloc", 0, "bytes of short-lived heap objects each request allocates (Latchkey's refresh: ~40,000 until session 13, ~37,000 since)")
	liveMiB := fs.Int("live", 0, "MiB of long-lived heap objects the collector must mark every cycle")
	syncPath := fs.String("sync", "", "group-commit each request to this file (created, truncated; fsync per batch) before answering; nethttp and loop-pool only")
	syncBytes := fs.Int("syncbytes", 4096, "bytes each request appends to -sync's file")
	burnKind := fs.String("burn", "time", "time: each request burns -work of wall-clock time; fixed: a fixed number of hashes that took -work at start (shows the machine's own speed changes)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	keepLive(*liveMiB)
	w, err := worker(*burnKind, *work)
	if err != nil {
		return err
	}
	if *syncPath != "" {
		if *mode == "loop-et" || *mode == "loop-lt" {
			return errors.New("-sync needs -mode nethttp or loop-pool (an event loop's inline handler must not block)")
		}
		gc, err := newGroupCommit(*syncPath, *syncBytes)
		if err != nil {
			return err
		}
		defer gc.close()
		cpu := w
		w = func() {
			cpu()
			if err := gc.commit(); err != nil {
				fmt.Fprintln(os.Stderr, "tailprobe: group commit:", err)
				os.Exit(1)
			}
		}
	}
	stop, err := start(*mode, *addr, w, *garbage)
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	stop()
	return nil
}

// groupCommit makes requests durable in batches: commit queues the caller
// and returns once a write and fsync that include its bytes are done.
type groupCommit struct {
	f     *os.File
	size  int             // bytes a request appends
	queue chan chan error // waiting requests
	done  chan struct{}   // closed when the writer has stopped
}

// groupCommitWrap is where the file starts over (as a WAL restarts after
// a checkpoint). The file is written to this size and synced before the
// first request, so that commits overwrite allocated blocks, as they do
// in a WAL that has restarted: a growing file's fsync also writes its
// block allocation.
const groupCommitWrap = 16 << 20

func newGroupCommit(path string, size int) (*groupCommit, error) {
	if size < 1 || size > 1<<20 {
		return nil, errors.New("-syncbytes must be between 1 and 1 MiB")
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(make([]byte, groupCommitWrap)); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	g := &groupCommit{f: f, size: size, queue: make(chan chan error, 4096), done: make(chan struct{})}
	go g.run()
	return g, nil
}

func (g *groupCommit) commit() error {
	ch := make(chan error, 1)
	g.queue <- ch
	return <-ch
}

// run is the writer: it takes every request waiting, writes their bytes
// in one call, syncs, and answers them all.
func (g *groupCommit) run() {
	defer close(g.done)
	var (
		off   int64
		buf   []byte
		batch []chan error
	)
	for ch := range g.queue {
		batch = append(batch[:0], ch)
		// Let the requests that are ready to run queue theirs first, as
		// Latchkey's write queue does on SQLite: on one P, without the
		// yield every batch would be one request.
		runtime.Gosched()
	drain:
		for {
			select {
			case ch, ok := <-g.queue:
				if !ok {
					break drain
				}
				batch = append(batch, ch)
			default:
				break drain
			}
		}
		n := len(batch) * g.size
		if cap(buf) < n {
			buf = bytes.Repeat([]byte{'w'}, n) // not zeros: a test counts them
		}
		if off+int64(n) > groupCommitWrap {
			off = 0
		}
		_, err := g.f.WriteAt(buf[:n], off)
		if err == nil {
			err = g.f.Sync() // fsync, as SQLite does
		}
		off += int64(n)
		for _, ch := range batch {
			ch <- err
		}
	}
}

func (g *groupCommit) close() {
	close(g.queue)
	<-g.done
	g.f.Close()
}

// start serves the probe's handler on addr the way mode says and returns
// a function that stops it.
func start(mode, addr string, work func(), garbage int) (stop func(), err error) {
	body := []byte(`{"access_token":"0123456789012345678901234567890123456789","token_type":"Bearer"}`)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		work()
		allocate(garbage)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	if mode == "nethttp" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = hs.Serve(ln) }()
		return func() { _ = hs.Close() }, nil
	}
	logging.SetLevel(logging.LevelNone)
	conf := nbhttp.Config{Network: "tcp", Addrs: []string{addr}, Handler: h, NPoller: 1}
	switch mode {
	case "loop-et":
		conf.EpollMod = nbio.EPOLLET
		conf.ServerExecutor = func(f func()) { f() }
	case "loop-lt":
		conf.ServerExecutor = func(f func()) { f() }
	case "loop-pool":
	default:
		return nil, fmt.Errorf("unknown mode %q (nethttp, loop-et, loop-lt, loop-pool)", mode)
	}
	e := nbhttp.NewEngine(conf)
	if err := e.Start(); err != nil {
		return nil, err
	}
	return e.Stop, nil
}

// result is what one load run measured.
type result struct {
	n                  int
	seconds            float64
	p50, p90, p99, max time.Duration
}

func (r result) String() string {
	ms := func(v time.Duration) float64 { return float64(v) / 1e6 }
	return fmt.Sprintf("requests/s %.0f  p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  p99/p50 %.2f",
		float64(r.n)/r.seconds, ms(r.p50), ms(r.p90), ms(r.p99), float64(r.p99)/float64(r.p50))
}

func load(args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:9099/", "URL to GET")
	c := fs.Int("c", 16, "concurrent clients, one connection each")
	d := fs.Duration("d", 10*time.Second, "measured duration")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured duration before it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := measure(*url, *c, *d, *warmup)
	if err != nil {
		return err
	}
	fmt.Println(r)
	return nil
}

// measure runs c closed-loop clients (each sends its next request when the
// previous answer is in) for warmup+d and returns the latencies of the
// requests started after the warm-up.
func measure(url string, c int, d, warmup time.Duration) (result, error) {
	if c < 1 || d <= 0 {
		return result{}, errors.New("need c >= 1 and d > 0")
	}
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c}, Timeout: 30 * time.Second}
	defer cl.CloseIdleConnections()
	begin := time.Now().Add(warmup)
	end := begin.Add(d)
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs []error
		wg   sync.WaitGroup
	)
	for range c {
		wg.Go(func() {
			var mine []time.Duration
			var err error
			for t := time.Now(); t.Before(end); t = time.Now() {
				var resp *http.Response
				if resp, err = cl.Get(url); err != nil {
					break
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
					break
				}
				if t.After(begin) {
					mine = append(mine, time.Since(t))
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			if err != nil {
				errs = append(errs, err)
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return result{}, err
	}
	if len(lat) == 0 {
		return result{}, errors.New("no requests completed")
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	return result{n: len(lat), seconds: d.Seconds(), p50: q(.5), p90: q(.9), p99: q(.99), max: lat[len(lat)-1]}, nil
}
