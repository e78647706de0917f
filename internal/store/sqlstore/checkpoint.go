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
// Between checkpoints, a second goroutine asks the kernel every
// walWritebackInterval to start writing the WAL's new pages to disk
// (sync_file_range on Linux; walwriteback_linux.go). Without it, a second
// of commits (tens of MB at the benchmark's peak) sat dirty in the page
// cache until the checkpoint's first sync of the WAL wrote it all at once:
// 40-80 ms during which every system call of the serving thread on the
// same core (socket writes, log writes, WAL reads) took milliseconds
// instead of microseconds (docs/BENCHMARKS.md, session 5). Written back as
// it comes, the same data leaves the checkpoint little to sync.
//
// Other processes on the same file (a CLI next to the server, several
// servers) use the same settings: each Store checkpoints what it can; a
// pass that finds another process checkpointing returns at once (PASSIVE
// never waits). The last connection to close checkpoints and removes the
// WAL, as before.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// checkpointInterval is how often a SQLite Store checkpoints its WAL while
// it is being written to. Each checkpoint disturbs the requests around it
// (syncs, the writer's final pass) by much the same amount whatever it
// copies, and two seconds of commits rewrite fewer than twice the pages of
// one (the same index pages are hot), so every 2 s gave a tighter tail
// than every second (p99/p50 2.8 -> 2.5 at c=16, 2.4 -> 2.2 at c=64,
// docs/BENCHMARKS.md, session 6). The price is the WAL file's size: about
// two seconds of commits at the peak write rate (123 MB at ~4,700
// grants/s, once 243 MB when a final pass did not restart it; session 5
// at one second: 102-107 MB).
//
// It is the default of the sqlite_checkpoint_interval setting
// (SetCheckpointInterval): longer intervals trade a larger WAL file for
// fewer disturbances.
const checkpointInterval = 2 * time.Second

// Bounds of SetCheckpointInterval: below the minimum every pass pays its
// two syncs for little (every 100 ms cost a fifth of the throughput,
// session 4); above the maximum the WAL file grows to gigabytes at full
// load and a crash leaves that much to replay at the next open.
const (
	MinCheckpointInterval = 250 * time.Millisecond
	MaxCheckpointInterval = 30 * time.Second
)

// SetCheckpointInterval sets how often the WAL is checkpointed while it is
// being written to (default 2 s; config sqlite_checkpoint_interval),
// clamped to [MinCheckpointInterval, MaxCheckpointInterval]. It does
// nothing on PostgreSQL and in-memory SQLite. Call it before the store is
// used by several goroutines (serve does, right after opening).
func (s *Store) SetCheckpointInterval(d time.Duration) {
	d = min(max(d, MinCheckpointInterval), MaxCheckpointInterval)
	if s.ckpt == nil || s.ckpt.every == d {
		return
	}
	s.ckpt.close()
	s.ckpt = newCheckpointer(s, d, walWritebackInterval)
}

// CheckpointInterval is the WAL checkpoint interval in force, 0 where
// there is no checkpointer (PostgreSQL, in-memory SQLite).
func (s *Store) CheckpointInterval() time.Duration {
	if s.ckpt == nil {
		return 0
	}
	return s.ckpt.every
}

// A background pass copies the frames that were in the WAL when it
// started; the frames committed while it ran are left for the next pass.
// Passes repeat until one takes less than checkpointQuickPass (so little
// was committed during it), then the writer's final pass copies the rest
// (~10 ms on session 4's machine, most of it the two syncs, during which
// no commit runs).
const checkpointQuickPass = 3 * time.Millisecond

// maxBackgroundPasses bounds the background passes of one checkpoint: a
// write rate that outpaces them leaves a larger final pass, never an
// endless loop. Each pass syncs both files; with the WAL written back as it
// grows a second pass rarely has much to copy (session 5: at most 2 passes
// gave a tighter tail than at most 5).
const maxBackgroundPasses = 2

// walWritebackInterval is how often, while it is written to, a Store has
// the kernel start writing the WAL's dirty pages to disk.
const walWritebackInterval = 50 * time.Millisecond

// walReadAheadChunk is how much of the WAL file, from where the writer
// will write its next frame, the writeback goroutine asks the kernel to
// bring back into the page cache at each interval: at the benchmark's peak
// (~50 MB/s of WAL) the writer writes ~2.5 MB an interval, so it stays
// within the chunk asked for at the last one or two intervals. A WAL frame
// (24 bytes and a page) covers two file blocks partially, and a partial
// write to a block the page cache no longer holds reads it from the disk
// first, inside the commit every request of the batch waits for:
// proactive reclaim (the benchmark VM's DAMON pageout of page cache it
// judges cold, every 5 s) made that 34 reads a second and stops of up to
// 0.4 s (docs/BENCHMARKS.md, sessions 12 and 13). Blocks still cached cost
// the kernel a lookup each (~2,000 per chunk).
const walReadAheadChunk = 8 << 20

// walReadAheadStart is how much of the WAL file's start every interval
// also asks for: after each restart of the WAL the writer rewrites the
// file from its first frame, possibly before the next interval.
const walReadAheadStart = 2 << 20

type checkpointer struct {
	s     *Store
	every time.Duration // the checkpoint interval
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
	// passes and finals count background and final passes, writebacks the
	// WAL writebacks started, for tests.
	passes, finals, writebacks atomic.Int64
	// dbSyncs counts the database file's syncs before final passes, for
	// tests.
	dbSyncs atomic.Int64
	// readAheadChunk is walReadAheadChunk (tests set less); readAheadFrom
	// is where the last read-ahead ahead of the writer started, and
	// readAheads counts the intervals that asked for the file's start,
	// for tests.
	readAheadChunk, readAheadFrom, readAheads atomic.Int64
}

func newCheckpointer(s *Store, every, writeback time.Duration) *checkpointer {
	c := &checkpointer{s: s, every: every, stop: make(chan struct{})}
	c.readAheadChunk.Store(walReadAheadChunk)
	seen := s.writes.commits.Load()
	c.wg.Go(func() { c.onWrites(every, seen, func() bool { c.checkpoint(); return true }) })
	c.wg.Go(func() { c.writebackWAL(writeback, seen) })
	return c
}

// onWrites calls fn at the end of every interval in which a batch was
// committed (seen: the number of batches committed before it started),
// until the checkpointer stops or fn returns false.
func (c *checkpointer) onWrites(interval time.Duration, seen int64, fn func() bool) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if n := c.s.writes.commits.Load(); n != seen {
			seen = n
			if !fn() {
				return
			}
		}
	}
}

// CheckpointPass is what one pass of a SQLite Store's WAL checkpointer did
// (OnCheckpoint).
type CheckpointPass struct {
	// Final is the writer's final pass, during which no commit runs; false
	// for a background pass, which runs alongside the commits.
	Final bool
	// Duration is how long the pass took: for the final pass, how long it
	// held every commit back.
	Duration time.Duration
	// WALFrames is the WAL's length in frames (pages) when the pass ended,
	// Copied how many of them are now in the database file. After a final
	// pass the two are equal unless another connection was reading an
	// older snapshot, and the next commit starts the WAL again from its
	// first frame. Both are -1 when another connection (another process)
	// was checkpointing and this pass did nothing.
	WALFrames, Copied int
	// Err is the pass's error; the frames it did not copy stay in the WAL
	// for the next checkpoint.
	Err error
}

// OnCheckpoint has fn called after every pass of the WAL checkpointer
// (file-backed SQLite only; on PostgreSQL and in-memory SQLite it is never
// called). fn runs on the checkpointer's or the writer's goroutine, so it
// must be quick (a metric's update); nil stops the calls.
func (s *Store) OnCheckpoint(fn func(CheckpointPass)) {
	if fn == nil {
		s.onCheckpoint.Store(nil)
		return
	}
	s.onCheckpoint.Store(&fn)
}

// observeCheckpoint reports one pass to the OnCheckpoint function.
func (s *Store) observeCheckpoint(p CheckpointPass) {
	if fn := s.onCheckpoint.Load(); fn != nil {
		(*fn)(p)
	}
}

// checkpoint runs the background passes, then has the writer run the final
// one. Errors are left for the next interval: a failed or partial
// checkpoint loses nothing (the frames stay in the WAL).
func (c *checkpointer) checkpoint() {
	ctx := context.Background()
	for range maxBackgroundPasses {
		t0 := time.Now()
		log, copied, err := c.s.walCheckpoint(ctx)
		took := time.Since(t0)
		c.passes.Add(1)
		c.s.observeCheckpoint(CheckpointPass{Duration: took, WALFrames: log, Copied: copied, Err: err})
		if err != nil || took < checkpointQuickPass {
			break
		}
		select {
		case <-c.stop:
			return
		default:
		}
	}
	c.syncDatabase()
	if c.s.writes.finalCheckpoint(ctx) == nil {
		c.finals.Add(1)
	}
}

// syncDatabase syncs the database file's data just before the final pass,
// alongside the commits. SQLite syncs the database file only in a pass
// that copies the WAL to its end, which under a steady write load is the
// writer's final pass alone: so that pass's sync wrote every page the
// background passes had copied since the last checkpoint, with no commit
// running (on session 14's machine 6.5-9.5 ms of a 10-12 ms pass). Synced
// here first, the final pass's sync has only the pages it copies itself
// to write (1.3 ms there; docs/BENCHMARKS.md, session 14). Durability
// does not depend on it: the final pass still syncs. A failure is left to
// that sync.
func (c *checkpointer) syncDatabase() {
	path, err := c.s.dbPath()
	if err != nil {
		return
	}
	f, err := c.s.locked.open(path)
	if err != nil {
		return
	}
	defer withIOProc()()
	if syncData(f) == nil {
		c.dbSyncs.Add(1)
	}
}

// writebackWAL starts the kernel's writeback of the WAL file every
// interval in which a batch was committed (seen as for onWrites), and asks
// for the WAL's next frames and its start to be in the page cache
// (readAhead). Where that is not supported (not Linux) it returns at once.
// A failure (the file not there yet, an I/O error) is tried again the next
// interval: neither is ever needed for correctness.
func (c *checkpointer) writebackWAL(interval time.Duration, seen int64) {
	w := walFile{s: c.s}
	defer w.close()
	c.onWrites(interval, seen, func() bool {
		err := w.writeback()
		if err == nil {
			c.writebacks.Add(1)
			c.readAhead(&w)
		}
		return !errors.Is(err, errors.ErrUnsupported)
	})
}

// readAhead asks the kernel to bring into the page cache the WAL file's
// first walReadAheadStart bytes and the next readAheadChunk bytes from
// where the writer will write its next frame (walWritePos): each frame the
// writer writes must find its two blocks cached or read them inside the
// commit (walReadAheadChunk). The advice returns without waiting for the
// reads; blocks already cached are only looked up. Session 12's version
// walked the file once from its start after each restart: blocks evicted
// after it had passed them were still read inside commits.
func (c *checkpointer) readAhead(w *walFile) {
	if adviseWillNeed(w.f, 0, walReadAheadStart) == nil {
		c.readAheads.Add(1)
	}
	pos, err := w.writePos()
	if err != nil {
		return
	}
	if adviseWillNeed(w.f, pos, c.readAheadChunk.Load()) == nil {
		c.readAheadFrom.Store(pos)
	}
}

// walFile is the Store's WAL file, opened for writeback. SQLite locks the
// database and -shm files, never the -wal file, so this descriptor's close
// cannot release any of SQLite's POSIX locks. The -shm file's descriptor
// belongs to the Store's lockedFiles, which closes it only after the last
// connection.
type walFile struct {
	s    *Store
	path string // the WAL's path, from PRAGMA database_list
	f    *os.File
	shm  *os.File // the WAL index (-shm) while f is open, for writePos; not closed here
}

// dbPath is the path of the Store's database file, from PRAGMA
// database_list; errors.ErrUnsupported for a database that is not a file.
func (s *Store) dbPath() (string, error) {
	var (
		seq        int
		name, file string
	)
	if err := s.db.DB.QueryRow("PRAGMA database_list").Scan(&seq, &name, &file); err != nil {
		return "", err
	}
	if file == "" {
		return "", errors.ErrUnsupported // not a file
	}
	return file, nil
}

// walPath is the path of the Store's WAL file, next to the database's.
func (s *Store) walPath() (string, error) {
	path, err := s.dbPath()
	return path + "-wal", err
}

// writeback starts writing the WAL's dirty pages, (re)opening the file if
// it is not open or was replaced (SQLite deletes it when the last
// connection to the database closes, in any process, and creates it anew).
func (w *walFile) writeback() error {
	if w.path == "" {
		path, err := w.s.walPath()
		if err != nil {
			return err
		}
		w.path = path
	}
	if w.f != nil && !w.current() {
		w.close()
	}
	if w.f == nil {
		f, err := os.Open(w.path)
		if err != nil {
			return err
		}
		w.f = f
	}
	err := startWriteback(w.f)
	if err != nil && !errors.Is(err, errors.ErrUnsupported) {
		w.close()
	}
	return err
}

// current reports whether the open file is still the one at w.path.
func (w *walFile) current() bool {
	open, err := w.f.Stat()
	if err != nil {
		return false
	}
	now, err := os.Stat(w.path)
	return err == nil && os.SameFile(open, now)
}

func (w *walFile) close() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	w.shm = nil // the Store's lockedFiles closes it, after the connections
}

// walIndexVersion is the version of the WAL index header's format
// (https://www.sqlite.org/walformat.html, "the wal-index header").
const walIndexVersion = 3007000

// walWritePos is the offset in the WAL file at which the writer will write
// its next frame, from the WAL index header that starts the -shm file
// (walformat.html): iVersion (u32) at 0, isInit (u8) at 12, szPage (u16,
// 1 for 65,536) at 14 and mxFrame (u32, the last valid frame) at 16, all
// in the machine's byte order; the WAL file has a 32-byte header, then
// frames of 24 bytes and a page each. It is a hint read without SQLite's
// locks: a commit may be moving it on meanwhile.
func walWritePos(hdr []byte) (int64, error) {
	if len(hdr) < 20 || binary.NativeEndian.Uint32(hdr) != walIndexVersion || hdr[12] != 1 {
		return 0, errors.New("sqlstore: no initialized WAL index header")
	}
	page := int64(binary.NativeEndian.Uint16(hdr[14:]))
	if page == 1 {
		page = 65536
	}
	if page < 512 || page&(page-1) != 0 {
		return 0, fmt.Errorf("sqlstore: WAL index header: page size %d", page)
	}
	return 32 + int64(binary.NativeEndian.Uint32(hdr[16:]))*(24+page), nil
}

// writePos reads walWritePos from the -shm file next to the WAL, looked
// up in the Store's lockedFiles once for the open WAL file.
func (w *walFile) writePos() (int64, error) {
	if w.shm == nil {
		shm, err := w.s.locked.open(strings.TrimSuffix(w.path, "-wal") + "-shm")
		if err != nil {
			return 0, err
		}
		w.shm = shm
	}
	var hdr [20]byte
	if _, err := w.shm.ReadAt(hdr[:], 0); err != nil {
		return 0, err
	}
	return walWritePos(hdr[:])
}

func (c *checkpointer) close() {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
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
