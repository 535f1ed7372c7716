package portal

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"testing"

	"sealpost/internal/blob"
	"sealpost/internal/fsx"
	"sealpost/internal/seal"
)

// TestBlobSurvivesPowerCut: a sealed blob, once writeSealed returned, reads
// back intact after a power cut that forgets every unsynced write; a cut
// during the write leaves the whole blob or none.
func TestBlobSurvivesPowerCut(t *testing.T) {
	key := bytes.Repeat([]byte{9}, seal.KeyLen)
	data := make([]byte, 300<<10)
	rand.Read(data)
	ctx := context.Background()
	check := func(ff *fsx.Fault, path string, must bool) {
		t.Helper()
		f, err := blob.Open(ctx, blob.NewFile(ff, "/blobs"), blob.Ref(path))
		if err != nil {
			if must {
				t.Fatalf("blob lost in a power cut: %v", err)
			}
			return
		}
		ra, err := seal.NewReaderAt(f, f.Size(), key, []byte("id1"))
		if err != nil {
			t.Fatalf("blob damaged by a power cut: %v", err)
		}
		got, err := io.ReadAll(ra.Reader())
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("blob reads back changed after a power cut: %v", err)
		}
	}
	ff := fsx.NewFault()
	ff.MkdirAll("/blobs/ab", 0o700)
	if _, err := writeSealed(ctx, blob.NewFile(ff, "/blobs"), "ab/id1", key, []byte("id1"), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	ff.PowerCut()
	ff.Restore()
	check(ff, "ab/id1", true)

	for cut := 1; cut < 20; cut++ {
		ff := fsx.NewFault()
		ff.MkdirAll("/blobs/ab", 0o700)
		ff.CutAt = cut
		_, err := writeSealed(ctx, blob.NewFile(ff, "/blobs"), "ab/id1", key, []byte("id1"), bytes.NewReader(data))
		ff.PowerCut()
		ff.Restore()
		check(ff, "ab/id1", err == nil)
	}
}
