package seal

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
)

func sealBytes(t *testing.T, key, aad, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, key, aad)
	if err != nil {
		t.Fatal(err)
	}
	// Odd-sized writes cross chunk boundaries.
	for p := plain; len(p) > 0; {
		n := min(len(p), 7777)
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != SealedLen(int64(len(plain))) {
		t.Fatalf("sealed len %d, SealedLen says %d", buf.Len(), SealedLen(int64(len(plain))))
	}
	return buf.Bytes()
}

func open(key, aad, sealed []byte) ([]byte, error) {
	ra, err := NewReaderAt(bytes.NewReader(sealed), int64(len(sealed)), key, aad)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(ra.Reader())
}

func TestRoundTrip(t *testing.T) {
	key := make([]byte, KeyLen)
	rand.Read(key)
	for _, n := range []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3*ChunkSize + 17} {
		plain := make([]byte, n)
		rand.Read(plain)
		sealed := sealBytes(t, key, []byte("id1"), plain)
		got, err := open(key, []byte("id1"), sealed)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("n=%d: round trip failed: %v", n, err)
		}
		if bytes.Contains(sealed, plain[:min(n, 64)]) && n >= 16 {
			t.Fatalf("n=%d: plaintext visible in sealed data", n)
		}
	}
}

func TestTamper(t *testing.T) {
	key := make([]byte, KeyLen)
	rand.Read(key)
	plain := bytes.Repeat([]byte("secret line\r\n"), 20000) // > 3 chunks
	sealed := sealBytes(t, key, []byte("id1"), plain)
	test := func(name string, data, aad []byte, k []byte) {
		t.Helper()
		if _, err := open(k, aad, data); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
	flip := bytes.Clone(sealed)
	flip[HeaderLen+100] ^= 1
	test("bit flip", flip, []byte("id1"), key)
	test("other aad", sealed, []byte("id2"), key)
	other := make([]byte, KeyLen)
	test("other key", sealed, []byte("id1"), other)
	test("truncated at chunk boundary", sealed[:HeaderLen+2*sealedSize], []byte("id1"), key)
	test("truncated mid chunk", sealed[:len(sealed)-5], []byte("id1"), key)
	swapped := bytes.Clone(sealed)
	copy(swapped[HeaderLen:], sealed[HeaderLen+sealedSize:HeaderLen+2*sealedSize])
	copy(swapped[HeaderLen+sealedSize:], sealed[HeaderLen:HeaderLen+sealedSize])
	test("chunks swapped", swapped, []byte("id1"), key)
	test("empty", nil, []byte("id1"), key)
}

func BenchmarkSeal(b *testing.B) {
	key := make([]byte, KeyLen)
	data := make([]byte, 1<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		w, _ := NewWriter(io.Discard, key, nil)
		w.Write(data)
		w.Close()
	}
}

// FuzzSealOpen: opening arbitrary bytes never panics, and succeeds only for
// a stream sealed under the key (every one of which holds "hello"; the salt
// is random, so each fuzz worker makes its own).
func FuzzSealOpen(f *testing.F) {
	key := make([]byte, KeyLen)
	var good bytes.Buffer
	w, _ := NewWriter(&good, key, []byte("id"))
	w.Write([]byte("hello"))
	w.Close()
	f.Add(good.Bytes())
	f.Add([]byte("SPL1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := open(key, []byte("id"), data)
		if err == nil && string(got) != "hello" {
			t.Fatalf("forged stream accepted: %q", got)
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}
