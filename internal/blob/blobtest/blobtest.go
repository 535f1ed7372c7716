// Package blobtest is the conformance suite every blob.Store passes: the
// file backend and the S3 backend run the same tests, so code above
// internal/blob can rely on one behaviour.
package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"

	"sealpost/internal/blob"
)

// Run runs the suite. newStore returns an empty store for one subtest;
// subtests run in parallel, each on its own store.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	tests := []struct {
		name string
		f    func(t *testing.T, s blob.Store)
	}{
		{"PutGet", testPutGet},
		{"PutRefusesExisting", testPutRefusesExisting},
		{"ConcurrentPutsOneWins", testConcurrentPuts},
		{"UnknownSize", testUnknownSize},
		{"FailedPutLeavesNothing", testFailedPut},
		{"Ranges", testRanges},
		{"Missing", testMissing},
		{"Delete", testDelete},
		{"List", testList},
		{"BadRefs", testBadRefs},
		{"Open", testOpen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.f(t, newStore(t))
		})
	}
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func put(t *testing.T, s blob.Store, ref blob.Ref, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), ref, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put %s: %v", ref, err)
	}
}

func get(t *testing.T, s blob.Store, ref blob.Ref, off, n int64) ([]byte, error) {
	t.Helper()
	rc, err := s.Get(context.Background(), ref, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func mustEqual(t *testing.T, s blob.Store, ref blob.Ref, want []byte) {
	t.Helper()
	got, err := get(t, s, ref, 0, -1)
	if err != nil {
		t.Fatalf("Get %s: %v", ref, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get %s: %d bytes that differ from the %d put", ref, len(got), len(want))
	}
	info, err := s.Stat(context.Background(), ref)
	if err != nil || info.Size != int64(len(want)) || info.Ref != ref {
		t.Fatalf("Stat %s: %+v %v, want size %d", ref, info, err, len(want))
	}
}

func testPutGet(t *testing.T, s blob.Store) {
	data := random(300 << 10)
	put(t, s, "ab/abcdef", data)
	mustEqual(t, s, "ab/abcdef", data)
	put(t, s, "ab/abcdef.1", nil) // an empty blob is a blob
	mustEqual(t, s, "ab/abcdef.1", nil)
	big := random(5<<20 + 17)
	put(t, s, "big", big)
	mustEqual(t, s, "big", big)
}

func testPutRefusesExisting(t *testing.T, s blob.Store) {
	first := random(1000)
	put(t, s, "q/m1", first)
	err := s.Put(context.Background(), "q/m1", bytes.NewReader([]byte("other")), 5)
	if !errors.Is(err, blob.ErrExists) {
		t.Fatalf("Put over an existing blob: %v, want ErrExists", err)
	}
	if err := s.Put(context.Background(), "q/m1", bytes.NewReader([]byte("other")), -1); !errors.Is(err, blob.ErrExists) {
		t.Fatalf("Put of unknown size over an existing blob: %v, want ErrExists", err)
	}
	mustEqual(t, s, "q/m1", first)
}

func testConcurrentPuts(t *testing.T, s blob.Store) {
	const n = 8
	datas := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		datas[i] = random(64<<10 + i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Put(context.Background(), "race/one", bytes.NewReader(datas[i]), int64(len(datas[i])))
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("puts %d and %d both succeeded on one ref", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, blob.ErrExists):
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no put succeeded")
	}
	mustEqual(t, s, "race/one", datas[winner])
}

func testUnknownSize(t *testing.T, s blob.Store) {
	data := random(200 << 10)
	if err := s.Put(context.Background(), "u/1", io.MultiReader(bytes.NewReader(data[:1000]), bytes.NewReader(data[1000:])), -1); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, s, "u/1", data)
}

type failingReader struct {
	r io.Reader
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errors.New("the source broke")
	}
	return n, err
}

func testFailedPut(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for _, size := range []int64{-1, 100 << 10} {
		ref := blob.Ref(fmt.Sprintf("f/%d", size))
		if err := s.Put(ctx, ref, &failingReader{bytes.NewReader(random(50 << 10))}, size); err == nil {
			t.Fatalf("size %d: a put whose source failed succeeded", size)
		}
		if _, err := s.Stat(ctx, ref); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("size %d: after a failed put, Stat: %v, want ErrNotFound", size, err)
		}
		// The ref is free for the retry.
		put(t, s, ref, []byte("retry"))
	}
	// A source shorter than the size given is a failure too.
	if err := s.Put(ctx, "f/short", bytes.NewReader(random(10)), 20); err == nil {
		t.Fatal("a put shorter than its size succeeded")
	}
	if _, err := s.Stat(ctx, "f/short"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("after a short put, Stat: %v", err)
	}
}

func testRanges(t *testing.T, s blob.Store) {
	data := random(10000)
	put(t, s, "r/1", data)
	for _, c := range []struct{ off, n, from, to int64 }{
		{0, -1, 0, 10000}, {0, 1, 0, 1}, {100, 200, 100, 300}, {9999, 1, 9999, 10000},
		{5000, -1, 5000, 10000}, {9000, 5000, 9000, 10000}, {1, 9999, 1, 10000},
	} {
		got, err := get(t, s, "r/1", c.off, c.n)
		if err != nil {
			t.Fatalf("Get(%d, %d): %v", c.off, c.n, err)
		}
		if !bytes.Equal(got, data[c.from:c.to]) {
			t.Fatalf("Get(%d, %d): %d bytes, want [%d:%d]", c.off, c.n, len(got), c.from, c.to)
		}
	}
	for _, c := range []struct{ off, n int64 }{{10000, 1}, {10000, -1}, {20000, 10}} {
		if _, err := get(t, s, "r/1", c.off, c.n); !errors.Is(err, blob.ErrRange) {
			t.Fatalf("Get(%d, %d) past the end: %v, want ErrRange", c.off, c.n, err)
		}
	}
	put(t, s, "r/empty", nil)
	if got, err := get(t, s, "r/empty", 0, -1); err != nil || len(got) != 0 {
		t.Fatalf("whole empty blob: %q %v", got, err)
	}
}

func testMissing(t *testing.T, s blob.Store) {
	ctx := context.Background()
	if _, err := s.Get(ctx, "no/such", 0, -1); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Get: %v", err)
	}
	if _, err := s.Get(ctx, "no/such", 10, 10); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("ranged Get: %v", err)
	}
	if _, err := s.Stat(ctx, "no/such"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat: %v", err)
	}
	if _, err := blob.Open(ctx, s, "no/such"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Delete(ctx, "no/such"); err != nil {
		t.Fatalf("Delete of a missing blob: %v", err)
	}
}

func testDelete(t *testing.T, s blob.Store) {
	ctx := context.Background()
	put(t, s, "d/1", []byte("one"))
	put(t, s, "d/2", []byte("two"))
	if err := s.Delete(ctx, "d/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "d/1"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat after Delete: %v", err)
	}
	if _, err := get(t, s, "d/1", 0, -1); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	mustEqual(t, s, "d/2", []byte("two"))
	if err := s.Delete(ctx, "d/1"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	put(t, s, "d/1", []byte("again"))
	mustEqual(t, s, "d/1", []byte("again"))
}

func list(t *testing.T, s blob.Store, prefix string) []string {
	t.Helper()
	var out []string
	err := s.List(context.Background(), prefix, func(i blob.Info) error {
		out = append(out, fmt.Sprintf("%s:%d", i.Ref, i.Size))
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return out
}

func testList(t *testing.T, s blob.Store) {
	for _, ref := range []blob.Ref{"b", "a/c", "a/b/2", "ab/x", "a.1", "a/b/1"} {
		put(t, s, ref, []byte(ref))
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a.1:3", "a/b/1:5", "a/b/2:5", "a/c:3", "ab/x:4", "b:1"}},
		{"a/", []string{"a/b/1:5", "a/b/2:5", "a/c:3"}},
		{"a", []string{"a.1:3", "a/b/1:5", "a/b/2:5", "a/c:3", "ab/x:4"}},
		{"a/b", []string{"a/b/1:5", "a/b/2:5"}},
		{"a/b/1", []string{"a/b/1:5"}},
		{"zz", nil},
	} {
		if got := list(t, s, c.prefix); !slices.Equal(got, c.want) {
			t.Errorf("List(%q) = %v, want %v", c.prefix, got, c.want)
		}
	}
	stop := errors.New("stop")
	n := 0
	err := s.List(context.Background(), "", func(blob.Info) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Fatalf("List did not stop at f's error: %v after %d", err, n)
	}
}

func testBadRefs(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for _, ref := range []blob.Ref{"", "../x", "a/../../x", "/abs", "a//b", "a/", ".tmp-1", "a/.hidden", "a b", "a\\b", "ü", blob.Ref(bytes.Repeat([]byte("a"), 513))} {
		err := s.Put(ctx, ref, bytes.NewReader([]byte("x")), 1)
		if err == nil || errors.Is(err, blob.ErrExists) {
			t.Errorf("Put(%q): %v, want a bad-ref error", ref, err)
		}
		if _, err := s.Get(ctx, ref, 0, -1); err == nil {
			t.Errorf("Get(%q) succeeded", ref)
		}
		if err := s.Delete(ctx, ref); err == nil {
			t.Errorf("Delete(%q) succeeded", ref)
		}
	}
	if got := list(t, s, ""); len(got) != 0 {
		t.Fatalf("bad refs left blobs: %v", got)
	}
}

func testOpen(t *testing.T, s blob.Store) {
	data := random(70000)
	put(t, s, "o/1", data)
	ra, err := blob.Open(context.Background(), s, "o/1")
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	if ra.Size() != int64(len(data)) {
		t.Fatalf("size %d", ra.Size())
	}
	buf := make([]byte, 1000)
	if n, err := ra.ReadAt(buf, 500); n != 1000 || err != nil || !bytes.Equal(buf, data[500:1500]) {
		t.Fatalf("ReadAt middle: %d %v", n, err)
	}
	if n, err := ra.ReadAt(buf, 69500); n != 500 || err != io.EOF || !bytes.Equal(buf[:500], data[69500:]) {
		t.Fatalf("ReadAt over the end: %d %v", n, err)
	}
	got, err := io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("whole: %v", err)
	}
}
