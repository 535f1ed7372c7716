package seal

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkOpenRead: a 256 MiB sealed file decrypted and read in 256 KiB
// reads, as the portal streams an attachment (bench/portal.sh compares it
// with openssl speed).
func BenchmarkOpenRead(b *testing.B) {
	key := make([]byte, 32)
	path := filepath.Join(b.TempDir(), "blob")
	f, _ := os.Create(path)
	w, _ := NewWriter(f, key, []byte("id"))
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for i := 0; i < 256; i++ {
		w.Write(chunk)
	}
	w.Close()
	f.Close()
	b.SetBytes(256 << 20)
	buf := make([]byte, 256<<10)
	for b.Loop() {
		f, _ := os.Open(path)
		st, _ := f.Stat()
		ra, err := NewReaderAt(f, st.Size(), key, []byte("id"))
		if err != nil {
			b.Fatal(err)
		}
		io.CopyBuffer(io.Discard, io.NewSectionReader(ra, 0, ra.Size()), buf)
		ra.Release()
		f.Close()
	}
}
