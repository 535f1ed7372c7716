package gateway

import (
	"bytes"
	"testing"

	"sealpost/internal/fsx"
)

// TestMasterKeySurvivesPowerCut: the master key, once returned, is on disk
// (data fsynced, name fsynced) and the same key comes back after a power
// cut. A new key after the cut would make the whole spool unreadable.
func TestMasterKeySurvivesPowerCut(t *testing.T) {
	ff := fsx.NewFault()
	path := "/data/keys/master.key"
	key, err := loadOrCreateMasterKey(ff, path)
	if err != nil {
		t.Fatal(err)
	}
	ff.PowerCut()
	ff.Restore()
	again, err := loadOrCreateMasterKey(ff, path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(key, again) {
		t.Fatal("the master key was lost in a power cut and replaced by another: the spool sealed under it is unreadable")
	}
	// A cut in the middle of writing it leaves no key or the whole key.
	for cut := 1; cut < 10; cut++ {
		ff := fsx.NewFault()
		ff.CutAt = cut
		loadOrCreateMasterKey(ff, path)
		ff.PowerCut()
		ff.Restore()
		if b, err := fsx.ReadFile(ff, path); err == nil && len(b) != 32 {
			t.Fatalf("cut at operation %d: a master key of %d bytes", cut, len(b))
		}
	}
}
