package sqlstore

import (
	"os"
	"path/filepath"
	"testing"
)

// lockedFiles hands out one descriptor per file and a new one only when
// the file at the path was replaced, keeps the old one open with the rest,
// and closes them all at close, after which it opens nothing.
func TestLockedFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db-shm")
	if err := os.WriteFile(path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	var l lockedFiles
	f1, err := l.open(path)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := l.open(path); err != nil || again != f1 {
		t.Fatalf("second open: %v, %v; want the same descriptor", again, err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	f2, err := l.open(path)
	if err != nil || f2 == f1 {
		t.Fatalf("open after the file was replaced: %v, %v; want a new descriptor", f2, err)
	}
	if _, err := f1.Stat(); err != nil {
		t.Errorf("the replaced file's descriptor was closed before close: %v", err)
	}
	if f, err := l.open(filepath.Join(filepath.Dir(path), "missing")); err == nil {
		t.Errorf("open of a missing file: %v, want an error", f)
	}
	l.close()
	for i, f := range []*os.File{f1, f2} {
		if _, err := f.Stat(); err == nil {
			t.Errorf("descriptor %d still open after close", i+1)
		}
	}
	if f, err := l.open(path); err == nil {
		t.Errorf("open after close: %v, want an error", f)
	}
}
