package blob_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"sealpost/internal/blob"
	"sealpost/internal/blob/blobtest"
	"sealpost/internal/fsx"
)

func TestFileConformance(t *testing.T) {
	t.Parallel()
	blobtest.Run(t, func(t *testing.T) blob.Store { return blob.NewFile(fsx.OS{}, filepath.Join(t.TempDir(), "blobs")) })
}

// Without /proc (no O_TMPFILE naming) the named-temporary-file path must
// keep the same contract.
func TestFileConformanceNoUnnamed(t *testing.T) {
	t.Parallel()
	blobtest.Run(t, func(t *testing.T) blob.Store {
		return blob.NewFile(fsx.OS{ProcFD: filepath.Join(t.TempDir(), "no-proc")}, filepath.Join(t.TempDir(), "blobs"))
	})
}

// A blob that Put returned for survives a power cut that forgets every
// unsynced write, whole; a cut during the Put leaves the whole blob or
// none, never a part, and never a blob another Put made replaced.
func TestFilePutSurvivesPowerCut(t *testing.T) {
	t.Parallel()
	data := make([]byte, 300<<10)
	rand.Read(data)
	ctx := context.Background()
	check := func(ff *fsx.Fault, must bool) {
		t.Helper()
		s := blob.NewFile(ff, "/blobs")
		rc, err := s.Get(ctx, "ab/id1", 0, -1)
		if errors.Is(err, blob.ErrNotFound) {
			if must {
				t.Fatal("blob lost in a power cut")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("blob changed by a power cut: %d bytes, %v", len(got), err)
		}
	}
	for _, noUnnamed := range []bool{false, true} {
		ff := fsx.NewFault()
		ff.NoUnnamed = noUnnamed
		if err := blob.NewFile(ff, "/blobs").Put(ctx, "ab/id1", bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		ff.PowerCut()
		ff.Restore()
		check(ff, true)
		for cut := 1; cut < 20; cut++ {
			ff := fsx.NewFault()
			ff.NoUnnamed = noUnnamed
			ff.CutAt = cut
			err := blob.NewFile(ff, "/blobs").Put(ctx, "ab/id1", bytes.NewReader(data), int64(len(data)))
			ff.PowerCut()
			ff.Restore()
			check(ff, err == nil)
		}
	}
}
