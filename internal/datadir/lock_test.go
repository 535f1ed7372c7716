package datadir

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestLock: one holder at a time; the second is told the holder's PID;
// after Release the directory can be locked again. (Two processes:
// e2e TestSecondServeOnSameDataDir.)
func TestLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	if pid, err := Holder(dir); err != nil || pid != os.Getpid() {
		t.Fatalf("Holder = %d, %v; want %d", pid, err, os.Getpid())
	}
	_, err = Acquire(dir)
	var inUse *InUseError
	if !errors.As(err, &inUse) || inUse.PID != os.Getpid() || inUse.Error() != "data directory "+dir+" in use by PID "+strconv.Itoa(os.Getpid()) {
		t.Fatalf("second Acquire: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if pid, _ := Holder(dir); pid != 0 {
		t.Fatalf("Holder after release = %d", pid)
	}
	l2, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after release: %v", err)
	}
	l2.Release()
}

func TestUnusableDirectory(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	_, err := Acquire(filepath.Join(f, "data"))
	var inUse *InUseError
	if err == nil || errors.As(err, &inUse) || err.Error() != "cannot create it: not a directory" {
		t.Fatalf("Acquire under a file: %v", err)
	}
}
