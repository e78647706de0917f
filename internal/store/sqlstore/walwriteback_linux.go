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

// adviseWillNeed asks the kernel to read n bytes of f from off into the
// page cache, without waiting for them (POSIX_FADV_WILLNEED).
func adviseWillNeed(f *os.File, off, n int64) error {
	return unix.Fadvise(int(f.Fd()), off, n, unix.FADV_WILLNEED)
}

// syncData writes f's dirty pages and the metadata needed to read them
// back, and waits for the device (fdatasync: no timestamps, which SQLite's
// own syncs of the same file write anyway).
func syncData(f *os.File) error {
	return unix.Fdatasync(int(f.Fd()))
}
