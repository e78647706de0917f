//go:build !linux

package sqlstore

import (
	"errors"
	"os"
)

// startWriteback: sync_file_range is Linux-only; elsewhere the WAL is
// written back by the checkpoint's sync alone (checkpoint.go).
func startWriteback(*os.File) error { return errors.ErrUnsupported }

// adviseWillNeed: the WAL's read-ahead follows its writeback, which only
// runs on Linux (checkpoint.go).
func adviseWillNeed(*os.File, int64, int64) error { return errors.ErrUnsupported }

// syncData: fsync where fdatasync is not portable.
func syncData(f *os.File) error { return f.Sync() }
