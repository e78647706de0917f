package sqlstore

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback has the kernel start writing f's dirty pages to disk
// without waiting for them (sync_file_range with SYNC_FILE_RANGE_WRITE
// only: no flush of the device's cache, no metadata, so not a substitute
// for the syncs SQLite does itself; checkpoint.go).
func startWriteback(f *os.File) error {
	return unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}
