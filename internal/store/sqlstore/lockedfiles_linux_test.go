package sqlstore_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// walIndexDMS is the byte of the -shm file on which every process using
// the WAL index holds a shared lock for as long as it has it open (SQLite's
// unix VFS: UNIX_SHM_DMS, after the eight WAL locks that start at 120).
// A process that can lock it exclusively takes itself for the index's only
// user and initializes the index again.
const walIndexDMS = 128

// posixLocks returns the ranges of the POSIX record locks this process
// holds on the file at path, from /proc/locks ("1: POSIX ADVISORY READ
// PID MAJ:MIN:INODE START END").
func posixLocks(t *testing.T, path string) [][2]int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	ino := fi.Sys().(*syscall.Stat_t).Ino
	f, err := os.Open("/proc/locks")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][2]int64
	pid := strconv.Itoa(os.Getpid())
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 8 || fs[1] != "POSIX" || fs[4] != pid {
			continue
		}
		dev := strings.Split(fs[5], ":")
		if len(dev) != 3 || dev[2] != strconv.FormatUint(ino, 10) {
			continue
		}
		start, _ := strconv.ParseInt(fs[6], 10, 64)
		end := int64(-1) // EOF
		if fs[7] != "EOF" {
			end, _ = strconv.ParseInt(fs[7], 10, 64)
		}
		out = append(out, [2]int64{start, end})
	}
	return out
}

func holds(locks [][2]int64, b int64) bool {
	for _, l := range locks {
		if l[0] <= b && (l[1] < 0 || b <= l[1]) {
			return true
		}
	}
	return false
}

// The checkpointer reads the writer's position from the WAL index (-shm)
// through a descriptor of its own. Closing that descriptor would release
// every POSIX lock this process holds on the file, SQLite's too, while the
// store's connections still use it: the store keeps it open until after
// its last connection, and then closes it.
func TestCheckpointerKeepsSQLiteLocks(t *testing.T) {
	s, write := writebackStore(t)
	deadline := time.Now().Add(10 * time.Second)
	for { // until the read-ahead has read the WAL index once
		write()
		time.Sleep(4 * walWriteback)
		if from, _ := s.WALReadAhead(); from > 32 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the WAL read-ahead never read the writer's position")
		}
	}
	wal, err := s.WALPath()
	if err != nil {
		t.Fatal(err)
	}
	shm := strings.TrimSuffix(wal, "-wal") + "-shm"
	if !holds(posixLocks(t, shm), walIndexDMS) {
		t.Fatalf("SQLite holds no lock on byte %d of %s (locks %v): the test's premise is wrong", walIndexDMS, shm, posixLocks(t, shm))
	}
	s.StopCheckpointer() // what Close does first, before the connections close
	if locks := posixLocks(t, shm); !holds(locks, walIndexDMS) {
		t.Fatalf("after the checkpointer stopped, this process holds no lock on the WAL index's byte %d (locks %v): its descriptor's close released SQLite's", walIndexDMS, locks)
	}
	write() // the connections still work, and still lock
	if !holds(posixLocks(t, shm), walIndexDMS) {
		t.Fatal("a write after the checkpointer stopped holds no lock on the WAL index")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// After Close, no descriptor of the store's is left on the -shm or
	// database files.
	dir := filepath.Dir(wal)
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, dir) {
			t.Errorf("descriptor %s still open on %s after Close", fd.Name(), target)
		}
	}
}
