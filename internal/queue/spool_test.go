package queue

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sealpost/internal/store"
)

func testSpool(t *testing.T, dir string) *Spool {
	t.Helper()
	key := bytes.Repeat([]byte{7}, 32)
	s, err := OpenSpool(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func put(t *testing.T, s *Spool, id string, body []byte) store.SpoolLoc {
	t.Helper()
	w, err := s.Create(id)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body)
	loc, d, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	return loc
}

func read(t *testing.T, s *Spool, id string, loc store.SpoolLoc) []byte {
	t.Helper()
	m, err := s.Open(id, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b, err := io.ReadAll(m.Reader())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func files(dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func TestSegmentsAndOwnFiles(t *testing.T) {
	dir := t.TempDir()
	s := testSpool(t, dir)
	s.segMax = 200 << 10                                          // a new segment every few messages
	small := bytes.Repeat([]byte("small message line\r\n"), 3000) // 60 KB
	big := make([]byte, InlineMax+1000)
	rand.Read(big)
	locs := map[string]store.SpoolLoc{}
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		locs[id] = put(t, s, id, small)
	}
	locs["big"] = put(t, s, "big", big)
	if locs["big"].Seg != 0 || locs["a"].Seg == 0 || locs["e"].Seg == locs["a"].Seg {
		t.Fatalf("locations %+v", locs)
	}
	for id, loc := range locs {
		want := small
		if id == "big" {
			want = big
		}
		if !bytes.Equal(read(t, s, id, loc), want) {
			t.Fatalf("%s read back wrong", id)
		}
	}
	// The id is bound in: a message cannot be read as another.
	if _, err := s.Open("b", locs["a"]); err == nil {
		t.Fatal("message a opened as b")
	}
	// Plaintext is nowhere on disk.
	for _, f := range files(dir) {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		if bytes.Contains(b, []byte("small message line")) {
			t.Fatalf("plaintext in %s", f)
		}
	}
	// Done messages release their segments; the full ones disappear.
	first := locs["a"].Seg
	for _, id := range []string{"a", "b", "c"} {
		if locs[id].Seg == first {
			s.Remove(id, locs[id])
		}
	}
	if _, err := os.Stat(s.segPath(first)); !os.IsNotExist(err) {
		t.Fatalf("segment %d kept after its messages were done: %v", first, files(dir))
	}
	s.Remove("big", locs["big"])
	if _, err := os.Stat(s.path("big")); !os.IsNotExist(err) {
		t.Fatal("own file kept")
	}
}

func TestRecover(t *testing.T) {
	dir := t.TempDir()
	s := testSpool(t, dir)
	s.segMax = 100 << 10
	body := bytes.Repeat([]byte("x"), 60<<10)
	la := put(t, s, "a", body)                       // segment 1
	lb := put(t, s, "b", body)                       // segment 2
	lc := put(t, s, "c", make([]byte, InlineMax+10)) // own file
	os.WriteFile(filepath.Join(dir, "tmp", "half"), []byte("junk"), 0o600)
	s.Close()

	// After a crash only b and c were committed.
	s2 := testSpool(t, dir)
	n, err := s2.Recover(map[string]store.SpoolLoc{"b": lb, "c": lc})
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 { // segment 1 (a) and tmp/half
		t.Fatalf("removed %d files: %v", n, files(dir))
	}
	if !bytes.Equal(read(t, s2, "b", lb), body) || len(read(t, s2, "c", lc)) != InlineMax+10 {
		t.Fatal("committed messages unreadable after recovery")
	}
	if _, err := s2.Open("a", la); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("uncommitted message still there: %v", err)
	}
	// New messages go to a new segment, never into a recovered one.
	ld := put(t, s2, "d", body)
	if ld.Seg <= lb.Seg {
		t.Fatalf("new segment %d after recovered %d", ld.Seg, lb.Seg)
	}
	if s2.Live() != 3 { // b, c and d
		t.Fatalf("live %d", s2.Live())
	}
}
