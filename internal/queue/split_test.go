package queue

import (
	"io"
	"strings"
	"testing"
)

func TestAddressedTo(t *testing.T) {
	msg := "From: a@example.gov.uk\r\nTo: x@one.example,\r\n y@two.example\r\nSubject: s\r\nCc: z@three.example\r\n\r\nbody To: stays\r\n"
	r, n := addressedTo(strings.NewReader(msg), int64(len(msg)), "y@two.example")
	got, err := io.ReadAll(io.NewSectionReader(r, 0, n))
	if err != nil {
		t.Fatal(err)
	}
	want := "From: a@example.gov.uk\r\nTo: <y@two.example>\r\nSubject: s\r\n\r\nbody To: stays\r\n"
	if string(got) != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	// Reads at any offset agree.
	for off := 0; off < len(want); off++ {
		b := make([]byte, 7)
		k, _ := r.ReadAt(b, int64(off))
		if string(b[:k]) != want[off:min(len(want), off+7)] {
			t.Fatalf("ReadAt %d: %q", off, b[:k])
		}
	}
	// No To at all: one is added.
	msg = "From: a@b\r\n\r\nx\r\n"
	r, n = addressedTo(strings.NewReader(msg), int64(len(msg)), "q@r")
	got, _ = io.ReadAll(io.NewSectionReader(r, 0, n))
	if string(got) != "From: a@b\r\nTo: <q@r>\r\n\r\nx\r\n" {
		t.Fatalf("%q", got)
	}
}
