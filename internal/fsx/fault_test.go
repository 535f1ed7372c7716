package fsx

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// TestFaultForgetsWhatIsNotSynced checks the model the power-cut tests rely
// on: file data survives only if fsynced, a name only if its directory was
// fsynced, and nothing works between the cut and Restore.
func TestFaultForgetsWhatIsNotSynced(t *testing.T) {
	f := NewFault()
	f.MkdirAll("/d", 0o700)
	write := func(name, data string, sync, dirSync bool) {
		fl, err := f.OpenFile(name, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		fl.Write([]byte(data))
		if sync {
			fl.Sync()
		}
		if dirSync {
			f.SyncDir("/d")
		}
	}
	write("/d/a", "synced, named", true, true)
	write("/d/b", "synced, name not durable", true, false)
	fl, _ := f.OpenFile("/d/a", os.O_WRONLY|os.O_APPEND, 0)
	fl.Write([]byte(" + tail never synced"))
	f.PowerCut()
	if _, err := fl.Write([]byte("x")); err == nil {
		t.Fatal("a handle from before the cut still writes")
	}
	if _, err := f.OpenFile("/d/c", os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		t.Fatal("a file was created while the power is off")
	}
	f.Restore()
	b, err := ReadFile(f, "/d/a")
	if err != nil || string(b) != "synced, named" {
		t.Fatalf("a: %q %v", b, err)
	}
	if _, err := ReadFile(f, "/d/b"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("b survived without a directory fsync: %v", err)
	}

	// Rename and remove are directory changes too.
	f.Rename("/d/a", "/d/a2")
	f.PowerCut()
	f.Restore()
	if _, err := ReadFile(f, "/d/a"); err != nil {
		t.Fatal("an unsynced rename survived")
	}

	// Unnamed files: nothing until linked and the directory synced.
	u, _ := f.CreateUnnamed("/d")
	u.Write([]byte("unnamed"))
	u.Sync()
	f.LinkUnnamed(u, "/d/u")
	f.SyncDir("/d")
	f.PowerCut()
	f.Restore()
	if b, _ := ReadFile(f, "/d/u"); string(b) != "unnamed" {
		t.Fatalf("linked and synced unnamed file: %q", b)
	}

	// CutAt: the n-th changing operation fails and the power is off.
	f.CutAt = f.Ops + 2
	g, _ := f.OpenFile("/d/e", os.O_CREATE|os.O_WRONLY, 0o600) // op 1
	if _, err := g.Write([]byte("e")); err == nil {            // op 2: cut
		t.Fatal("the operation at CutAt succeeded")
	}
	if !f.Cut() {
		t.Fatal("no cut")
	}
	f.Restore()
	if _, err := ReadFile(f, "/d/e"); err == nil {
		t.Fatal("a file created but never synced survived the cut")
	}

	// Punch zeroes.
	p, _ := f.OpenFile("/d/u", os.O_RDWR, 0)
	p.Punch(2, 3)
	b = make([]byte, 7)
	p.ReadAt(b, 0)
	if !bytes.Equal(b, []byte("un\x00\x00\x00ed")) {
		t.Fatalf("punched: %q", b)
	}
}

// TestWriteFileDurable: fsx.WriteFile's result survives a cut; a cut
// before it returns leaves the old content or the new, never a part.
func TestWriteFileDurable(t *testing.T) {
	for cut := 0; cut < 8; cut++ {
		f := NewFault()
		f.MkdirAll("/k", 0o700)
		if err := WriteFile(f, "/k/key", []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		if cut > 0 {
			f.CutAt = f.Ops + cut
		}
		err := WriteFile(f, "/k/key", []byte("new key"), 0o600)
		f.PowerCut()
		f.Restore()
		b, rerr := ReadFile(f, "/k/key")
		switch {
		case rerr != nil:
			t.Fatalf("cut %d: key gone: %v", cut, rerr)
		case err == nil && string(b) != "new key":
			t.Fatalf("cut %d: WriteFile returned nil but the file holds %q", cut, b)
		case string(b) != "old" && string(b) != "new key":
			t.Fatalf("cut %d: a torn file %q", cut, b)
		}
	}
}
