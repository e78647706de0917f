package sqlstore_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/store/sqlstore"
	"github.com/latchkey-dev/latchkey/internal/testdb"
)

// walFrameBytes is one WAL frame: a 4 KiB page and its 24-byte header.
const walFrameBytes = 4096 + 24

// walWriteback is the WAL writeback interval of the tests' checkpointers
// (the server's is 50 ms).
const walWriteback = 5 * time.Millisecond

// A checkpoint taken while writes continue leaves the WAL fully copied, so
// the next commit restarts it from the beginning (checkpoint.go): without
// the writer's final pass, the frames committed during the background
// passes would stay uncopied and the WAL would only ever grow.
func TestCheckpointRestartsWAL(t *testing.T) {
	ctx := context.Background()
	path := testdb.SQLitePath(t)
	s, err := sqlstore.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.RestartCheckpointer(time.Hour, walWriteback) // only the checkpoint below
	walSize := func() int64 {
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ev := &store.AuditEvent{Time: time.Now().UTC(), Type: "test.checkpoint", UserID: "ckpt", FamilyID: fmt.Sprintf("f%d-%d", w, i)}
				if err := s.AppendAudit(ctx, ev); err != nil {
					t.Errorf("append: %v", err)
					return
				}
			}
		})
	}
	deadline := time.Now().Add(time.Minute)
	for walSize() < 2<<20 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	before := walSize() / walFrameBytes
	if before < 256 {
		close(stop)
		wg.Wait()
		t.Fatalf("the WAL holds %d frames after a minute of writes, want autocheckpoint off", before)
	}
	s.CheckpointNow() // while the writers go on
	close(stop)
	wg.Wait()

	log, copied, err := s.WALCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if int64(log) >= before/2 {
		t.Errorf("after the checkpoint the WAL holds %d frames (%d before it): it was not restarted", log, before)
	}
	if copied != log {
		t.Errorf("%d of %d frames copied with no writer running", copied, log)
	}
	if passes, finals := s.Checkpoints(); passes < 1 || finals != 1 {
		t.Errorf("%d background passes and %d final passes, want at least 1 and 1", passes, finals)
	}
	// The pages the background passes copied are synced before the final
	// pass, alongside the writers, so that the final pass's own sync,
	// during which no commit runs, has only its pages to write.
	if n := s.DatabaseSyncs(); n != 1 {
		t.Errorf("the database file was synced %d times before the final pass, want 1", n)
	}
	got, err := s.ListAudit(ctx, store.AuditFilter{UserID: "ckpt", Limit: 1})
	if err != nil || len(got) != 1 {
		t.Fatalf("events after the checkpoint: %v %v", got, err)
	}
}

// The checkpointer runs by itself once something was written, and not
// again until something more is.
func TestCheckpointerRunsAfterWrites(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	s.RestartCheckpointer(10*time.Millisecond, time.Hour)
	if err := s.AppendAudit(ctx, &store.AuditEvent{Time: time.Now().UTC(), Type: "test.checkpoint", UserID: "ckpt"}); err != nil {
		t.Fatal(err)
	}
	waitForCheckpoint(t, s)
	p1, f1 := s.Checkpoints()
	time.Sleep(100 * time.Millisecond) // ten intervals with nothing written
	if p2, f2 := s.Checkpoints(); p2 != p1 || f2 != f1 {
		t.Errorf("checkpointed again with nothing written: passes %d -> %d, finals %d -> %d", p1, p2, f1, f2)
	}
	log, _, err := s.WALCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if log != 0 {
		// The final pass copied everything; nothing was written since.
		n, c, _ := s.WALCheckpoint(ctx)
		if n != c {
			t.Errorf("WAL %d frames, %d copied, after the checkpointer ran", n, c)
		}
	}
}

// waitForCheckpoint waits up to 10 s for s's checkpointer to finish a
// checkpoint (its final pass).
func waitForCheckpoint(t *testing.T, s *sqlstore.Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, finals := s.Checkpoints(); finals == 0; _, finals = s.Checkpoints() {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint within 10s of a write")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// writebackStore returns a SQLite store whose checkpointer starts the WAL's
// writeback every walWriteback and checkpoints only when asked, and a
// function that commits one write. The writeback (and the read-ahead that
// follows it) is Linux-only: elsewhere the test is skipped.
func writebackStore(t *testing.T) (*sqlstore.Store, func()) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("WAL writeback uses sync_file_range, which is Linux-only")
	}
	s := testdb.SQLite(t)
	s.RestartCheckpointer(time.Hour, walWriteback)
	return s, func() {
		t.Helper()
		if err := s.AppendAudit(context.Background(), &store.AuditEvent{Time: time.Now().UTC(), Type: "test.writeback", UserID: "wb"}); err != nil {
			t.Fatal(err)
		}
	}
}

// While the store is written to, the WAL's writeback is started every
// interval (Linux: sync_file_range), and not while nothing is written.
func TestWALWriteback(t *testing.T) {
	s, write := writebackStore(t)
	waitFor := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for s.WALWritebacks() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d WAL writebacks within 10s of a write, want %d", s.WALWritebacks(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	write()
	waitFor(1)
	n := s.WALWritebacks()
	time.Sleep(20 * walWriteback) // nothing written
	if m := s.WALWritebacks(); m != n {
		t.Errorf("%d writebacks with nothing written, want none", m-n)
	}
	write()
	waitFor(n + 1)
}

// At each writeback interval the read-ahead asks for the WAL from where
// the writer will write its next frame, following it as commits go on and
// back to the file's start after a restart, and for the file's start
// itself. Until the first restart the writer appends, so its position is
// the WAL file's size.
func TestWALReadAhead(t *testing.T) {
	s, write := writebackStore(t)
	walSize := func() int64 {
		t.Helper()
		path, err := s.WALPath()
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	// writeUntil writes until an interval after a commit has put the
	// read-ahead where want says. A commit is counted (and an interval
	// can see it) before it is in the WAL, so it writes again until then.
	writeUntil := func(what string, want func(from int64) bool) int64 {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			write()
			for range 20 {
				time.Sleep(walWriteback)
				if from, _ := s.WALReadAhead(); want(from) {
					return from
				}
			}
			if time.Now().After(deadline) {
				from, _ := s.WALReadAhead()
				t.Fatalf("%s: read-ahead from %d within 10s of writes (WAL %d bytes)", what, from, walSize())
			}
		}
	}
	atEnd := func(from int64) bool { return from > 32 && from == walSize() }
	first := writeUntil("first commits", atEnd)
	_, starts := s.WALReadAhead()
	for range 5 {
		write()
	}
	later := writeUntil("more commits", atEnd)
	if later <= first {
		t.Fatalf("read-ahead from %d after more commits, want past %d", later, first)
	}
	s.CheckpointNow() // every frame copied: the next commit restarts the WAL
	size := walSize()
	writeUntil("after the restart", func(from int64) bool {
		return from > 32 && from < later && (from-32)%walFrameBytes == 0
	})
	if walSize() != size {
		t.Fatalf("WAL grew from %d to %d bytes after the restart: not restarted", size, walSize())
	}
	if _, n := s.WALReadAhead(); n <= starts {
		t.Fatalf("the WAL's start asked for in %d intervals, want more than %d", n, starts)
	}
}

// walWritePos reads the WAL index header in the machine's byte order
// (page size 1 meaning 65,536) and refuses a header that is not one.
func TestWALWritePos(t *testing.T) {
	hdr := func(version uint32, init byte, page uint16, frames uint32) []byte {
		b := make([]byte, 48)
		binary.NativeEndian.PutUint32(b, version)
		b[12] = init
		binary.NativeEndian.PutUint16(b[14:], page)
		binary.NativeEndian.PutUint32(b[16:], frames)
		return b
	}
	for _, tt := range []struct {
		name string
		hdr  []byte
		want int64 // -1: refused
	}{
		{"empty WAL", hdr(3007000, 1, 4096, 0), 32},
		{"10 frames", hdr(3007000, 1, 4096, 10), 32 + 10*walFrameBytes},
		{"64 KiB pages", hdr(3007000, 1, 1, 3), 32 + 3*(65536+24)},
		{"512-byte pages", hdr(3007000, 1, 512, 2), 32 + 2*(512+24)},
		{"not initialized", hdr(3007000, 0, 4096, 10), -1},
		{"other version", hdr(3007001, 1, 4096, 10), -1},
		{"page size not a power of two", hdr(3007000, 1, 4000, 10), -1},
		{"page size too small", hdr(3007000, 1, 256, 10), -1},
		{"short", hdr(3007000, 1, 4096, 10)[:19], -1},
		{"zeros", make([]byte, 48), -1},
	} {
		got, err := sqlstore.WALWritePos(tt.hdr)
		if tt.want < 0 {
			if err == nil {
				t.Errorf("%s: position %d, want an error", tt.name, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: %d, %v; want %d", tt.name, got, err, tt.want)
		}
	}
}

// walWritePos never panics, and any position it returns is a frame
// boundary past the WAL header.
func FuzzWALWritePos(f *testing.F) {
	b := make([]byte, 20)
	binary.NativeEndian.PutUint32(b, 3007000)
	b[12] = 1
	binary.NativeEndian.PutUint16(b[14:], 4096)
	binary.NativeEndian.PutUint32(b[16:], 7)
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, hdr []byte) {
		pos, err := sqlstore.WALWritePos(hdr)
		if err != nil {
			return
		}
		page := int64(binary.NativeEndian.Uint16(hdr[14:]))
		if page == 1 {
			page = 65536
		}
		if pos < 32 || (pos-32)%(page+24) != 0 {
			t.Fatalf("position %d with %d-byte pages", pos, page)
		}
	})
}

// SetCheckpointInterval (config sqlite_checkpoint_interval) replaces the
// interval within its bounds, and the new checkpointer runs after writes.
func TestSetCheckpointInterval(t *testing.T) {
	s := testdb.SQLite(t)
	if got := s.CheckpointInterval(); got != 2*time.Second {
		t.Errorf("default interval %v, want 2s", got)
	}
	for _, tt := range []struct{ set, want time.Duration }{
		{3 * time.Second, 3 * time.Second},
		{time.Millisecond, sqlstore.MinCheckpointInterval},
		{time.Hour, sqlstore.MaxCheckpointInterval},
		{sqlstore.MinCheckpointInterval, sqlstore.MinCheckpointInterval},
	} {
		s.SetCheckpointInterval(tt.set)
		if got := s.CheckpointInterval(); got != tt.want {
			t.Errorf("SetCheckpointInterval(%v): interval %v, want %v", tt.set, got, tt.want)
		}
	}
	ctx := context.Background()
	if err := s.AppendAudit(ctx, &store.AuditEvent{Time: time.Now().UTC(), Type: "test.checkpoint", UserID: "ckpt"}); err != nil {
		t.Fatal(err)
	}
	waitForCheckpoint(t, s)

	// No checkpointer where there is no WAL file to checkpoint.
	pg := testdb.Postgres(t)
	pg.SetCheckpointInterval(time.Second)
	if got := pg.CheckpointInterval(); got != 0 {
		t.Errorf("PostgreSQL: interval %v, want 0 (no checkpointer)", got)
	}
}

// OnCheckpoint sees every pass: the background ones, then the writer's
// final pass, which leaves the WAL fully copied; after OnCheckpoint(nil)
// nothing more. The observer outlives a new checkpoint interval.
func TestOnCheckpoint(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	s.RestartCheckpointer(time.Hour, time.Hour) // only the checkpoints below
	var (
		mu     sync.Mutex
		passes []sqlstore.CheckpointPass
	)
	s.OnCheckpoint(func(p sqlstore.CheckpointPass) {
		mu.Lock()
		passes = append(passes, p)
		mu.Unlock()
	})
	for i := range 50 {
		if err := s.AppendAudit(ctx, &store.AuditEvent{Time: time.Now().UTC(), Type: "test.checkpoint", UserID: "ckpt", FamilyID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	s.CheckpointNow()
	mu.Lock()
	got := append([]sqlstore.CheckpointPass(nil), passes...)
	mu.Unlock()
	bg, finals := 0, 0
	for _, p := range got {
		if p.Err != nil {
			t.Errorf("pass %+v failed", p)
		}
		if p.Duration <= 0 || p.WALFrames <= 0 {
			t.Errorf("pass %+v: want a duration and the WAL's frames (50 commits were written)", p)
		}
		if p.Final {
			finals++
			if p.Copied != p.WALFrames {
				t.Errorf("final pass copied %d of %d frames, want all", p.Copied, p.WALFrames)
			}
		} else {
			bg++
		}
	}
	if bg < 1 || finals != 1 || len(got) == 0 || !got[len(got)-1].Final {
		t.Fatalf("passes %+v: want background passes, then one final pass", got)
	}
	if cp, cf := s.Checkpoints(); int(cp) != bg || cf != 1 {
		t.Errorf("observed %d background passes and 1 final pass, the checkpointer counted %d and %d", bg, cp, cf)
	}

	// A new interval keeps the observer.
	s.SetCheckpointInterval(time.Minute)
	if err := s.AppendAudit(ctx, &store.AuditEvent{Time: time.Now().UTC(), Type: "test.checkpoint", UserID: "ckpt"}); err != nil {
		t.Fatal(err)
	}
	s.CheckpointNow()
	mu.Lock()
	n := len(passes)
	mu.Unlock()
	if n <= len(got) {
		t.Errorf("no pass observed after SetCheckpointInterval")
	}

	s.OnCheckpoint(nil)
	if err := s.AppendAudit(ctx, &store.AuditEvent{Time: time.Now().UTC(), Type: "test.checkpoint", UserID: "ckpt"}); err != nil {
		t.Fatal(err)
	}
	s.CheckpointNow()
	mu.Lock()
	defer mu.Unlock()
	if len(passes) != n {
		t.Errorf("%d passes observed after OnCheckpoint(nil)", len(passes)-n)
	}
}
