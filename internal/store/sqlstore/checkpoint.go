package sqlstore

// WAL checkpoints of a SQLite Store, off the commit path.
//
// SQLite's automatic checkpoint runs inside the commit that takes the WAL
// past 1,000 pages: that commit copies every page in the WAL back into the
// database file and syncs both files. Under load that was every ~125 ms,
// and each one took 10-20 ms on the benchmark machine (docs/BENCHMARKS.md,
// session 4). Two things made it worse than its own duration:
//
//   - every request of the group commit, and every request queued behind
//     it, waited for the checkpoint;
//   - the checkpoint's file I/O is system calls on the writer's thread.
//     Go gives a processor (P) held by a thread in a system call to another
//     thread only when sysmon notices, and sysmon, idle under a steady load,
//     looks only every 10 ms. With one P (a server on one core) nothing at
//     all ran for up to 10-20 ms.
//
// So a Store turns the automatic checkpoint off (wal_autocheckpoint=0 on
// each connection) and a checkpointer goroutine runs them instead, once
// per checkpointInterval when anything was written:
//
//  1. Background passes (PRAGMA wal_checkpoint(PASSIVE)) on a pool
//     connection, concurrent with the writer's commits. They copy what
//     is in the WAL when they start.
//  2. A final pass run by the writer goroutine between two batches, with
//     no commit in flight: it copies the few frames committed during the
//     background passes, so the WAL is then fully copied and the next
//     commit starts it again from the beginning (SQLite restarts the WAL
//     only when no frame is left to copy, which concurrent commits would
//     otherwise never allow: the file would grow for as long as writes
//     continue).
//
// Each pass runs with one more P (withIOProc), so the thread blocked in the
// checkpoint's system calls does not hold the only P.
//
// Other processes on the same file (a CLI next to the server, several
// servers) use the same settings: each Store checkpoints what it can; a
// pass that finds another process checkpointing returns at once (PASSIVE
// never waits). The last connection to close checkpoints and removes the
// WAL, as before.

import (
	"context"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// checkpointInterval is how often a SQLite Store checkpoints its WAL while
// it is being written to. At the benchmark's peak write rate the WAL file
// grows to 57-73 MB (docs/BENCHMARKS.md, session 4).
const checkpointInterval = time.Second

// A background pass copies the frames that were in the WAL when it
// started; the frames committed while it ran are left for the next pass.
// Passes repeat until one takes less than checkpointQuickPass (so little
// was committed during it), then the writer's final pass copies the rest
// (~10 ms on session 4's machine, most of it the two syncs, during which
// no commit runs).
const checkpointQuickPass = 3 * time.Millisecond

// maxBackgroundPasses bounds the background passes of one checkpoint: a
// write rate that outpaces them leaves a larger final pass, never an
// endless loop.
const maxBackgroundPasses = 5

type checkpointer struct {
	s      *Store
	every  time.Duration
	stop   chan struct{}
	exited chan struct{}
	once   sync.Once
	// passes and finals count background and final passes, for tests.
	passes, finals atomic.Int64
}

func newCheckpointer(s *Store, every time.Duration) *checkpointer {
	c := &checkpointer{s: s, every: every, stop: make(chan struct{}), exited: make(chan struct{})}
	go c.run(s.writes.commits.Load())
	return c
}

// run checkpoints every interval in which a batch was committed; seen is
// the number of batches committed before it started.
func (c *checkpointer) run(seen int64) {
	defer close(c.exited)
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if n := c.s.writes.commits.Load(); n != seen {
			seen = n
			c.checkpoint()
		}
	}
}

// checkpoint runs the background passes, then has the writer run the final
// one. Errors are left for the next interval: a failed or partial
// checkpoint loses nothing (the frames stay in the WAL).
func (c *checkpointer) checkpoint() {
	ctx := context.Background()
	for range maxBackgroundPasses {
		t0 := time.Now()
		_, _, err := c.s.walCheckpoint(ctx)
		c.passes.Add(1)
		if err != nil || time.Since(t0) < checkpointQuickPass {
			break
		}
		select {
		case <-c.stop:
			return
		default:
		}
	}
	if c.s.writes.finalCheckpoint(ctx) == nil {
		c.finals.Add(1)
	}
}

func (c *checkpointer) close() {
	c.once.Do(func() { close(c.stop) })
	<-c.exited
}

// walCheckpoint runs one PASSIVE checkpoint and returns the WAL's size in
// frames and how many of them are now copied to the database file.
func (s *Store) walCheckpoint(ctx context.Context) (log, copied int, err error) {
	defer withIOProc()()
	var busy int
	err = s.db.DB.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &copied)
	return log, copied, err
}

// withIOProc raises GOMAXPROCS by one until the returned function is
// called, for work that blocks its thread in system calls for milliseconds
// (a checkpoint's writes and syncs): the other goroutines keep a P to run
// on. Nested and concurrent calls share one raise. GOMAXPROCS goes back to
// the runtime's default (which follows the CPU quota and affinity) or, if
// the GOMAXPROCS environment variable set it, to that value.
func withIOProc() func() {
	ioProcs.Lock()
	if ioProcs.depth == 0 {
		ioProcs.prev = runtime.GOMAXPROCS(0)
		runtime.GOMAXPROCS(ioProcs.prev + 1)
	}
	ioProcs.depth++
	ioProcs.Unlock()
	return func() {
		ioProcs.Lock()
		defer ioProcs.Unlock()
		ioProcs.depth--
		if ioProcs.depth > 0 {
			return
		}
		if gomaxprocsFromEnv {
			runtime.GOMAXPROCS(ioProcs.prev)
		} else {
			runtime.SetDefaultGOMAXPROCS()
		}
	}
}

var ioProcs struct {
	sync.Mutex
	depth, prev int
}

var gomaxprocsFromEnv = os.Getenv("GOMAXPROCS") != ""
