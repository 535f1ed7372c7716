package queue

import (
	"bytes"
	"os"
	"strconv"
	"testing"
)

// BenchmarkSpoolMessage is one small message's life in the spool: sealed,
// appended, flushed, read back once, released.
func BenchmarkSpoolMessage(b *testing.B) {
	dir := b.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir, _ = os.MkdirTemp("/dev/shm", "sealpost-bench-")
		defer os.RemoveAll(dir)
	}
	s, err := OpenSpool(dir, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := bytes.Repeat([]byte("a line of a message of four kilobytes\r\n"), 100)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		id := "m" + strconv.Itoa(i)
		w, err := s.Create(id)
		if err != nil {
			b.Fatal(err)
		}
		w.Write(body)
		loc, d, err := w.Commit()
		if err != nil {
			b.Fatal(err)
		}
		if i%32 == 0 {
			d.Sync() // a batch of 32 shares a flush
		}
		m, err := s.Open(id, loc)
		if err != nil {
			b.Fatal(err)
		}
		m.Close()
		s.Remove(id, loc)
	}
}
