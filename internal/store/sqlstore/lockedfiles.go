package sqlstore

import (
	"errors"
	"os"
	"sync"
)

// lockedFiles holds the Store's own descriptors on files SQLite locks: the
// WAL index (-shm), read for the writer's position (checkpoint.go), and
// the database file, synced before the final checkpoint pass.
//
// POSIX record locks (fcntl F_SETLK, which SQLite's unix VFS takes) belong
// to a process and a file, not to a descriptor: closing any descriptor of
// a file releases every lock the process holds on it, SQLite's included.
// Had the Store closed such a descriptor while its connections were open,
// another process (the CLI, a second server) could have found the WAL
// index's dead-man-switch byte unlocked, taken itself for the first user
// and initialized the index again under the writer. So each file is
// opened once and its descriptors are closed only after the Store's last
// connection is (Store.Close). The WAL file itself is never locked by
// SQLite, so the checkpointer opens and closes it freely.
type lockedFiles struct {
	mu     sync.Mutex
	files  map[string][]*os.File // by path; the last is the file there now
	closed bool
}

var errLockedFilesClosed = errors.New("sqlstore: store closed")

// open returns a read-only descriptor of the file at path: the one opened
// before if the file there is still the same one. A file that was replaced
// (deleted and created again, which SQLite does to the -shm file when the
// last connection of every process has closed) gets a new descriptor; the
// old one stays open with the others until close.
func (l *lockedFiles) open(path string) (*os.File, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errLockedFilesClosed
	}
	if fs := l.files[path]; len(fs) > 0 {
		last := fs[len(fs)-1]
		open, err1 := last.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(open, now) {
			return last, nil
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if l.files == nil {
		l.files = make(map[string][]*os.File)
	}
	l.files[path] = append(l.files[path], f)
	return f, nil
}

// close closes every descriptor; call it after the last connection to the
// database has been closed. Later opens fail.
func (l *lockedFiles) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for _, fs := range l.files {
		for _, f := range fs {
			f.Close()
		}
	}
	l.files = nil
}
