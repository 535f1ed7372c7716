package mailauth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
)

type recorder struct{ bytes.Buffer }

func (r *recorder) Sum(b []byte) []byte { return append(b, r.Bytes()...) }
func (r *recorder) Reset()              { r.Buffer.Reset() }
func (r *recorder) Size() int           { return 0 }
func (r *recorder) BlockSize() int      { return 1 }

func relaxedBodyOf(s string, step int) string {
	rec := &recorder{}
	rb := newRelaxedBody(rec)
	for i := 0; i < len(s); i += step {
		rb.Write([]byte(s[i:min(i+step, len(s))]))
	}
	return string(rb.Sum())
}

func TestRelaxedCanonicalisation(t *testing.T) {
	// RFC 6376 §3.4.5, the example.
	if got := relaxedHeader("A: X") + relaxedHeader("B : Y\t\r\n\tZ  "); got != "a:X\r\nb:Y Z\r\n" {
		t.Fatalf("headers: %q", got)
	}
	test := func(in, want string) {
		t.Helper()
		for _, step := range []int{1, 2, 3, 1000} {
			if got := relaxedBodyOf(in, step); got != want {
				t.Errorf("body %q (step %d): got %q, want %q", in, step, got, want)
			}
		}
	}
	test(" C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n") // RFC 6376 §3.4.5
	test("", "")
	test("\r\n\r\n", "")
	test("  \t\r\n", "")
	test("x", "x\r\n")
	test("a\r\n\r\nb\r\n\r\n", "a\r\n\r\nb\r\n")
	test("a  \r\n \r\nb", "a\r\n\r\nb\r\n")
}

// FuzzRelaxedBody: chunking never changes the canonical form.
func FuzzRelaxedBody(f *testing.F) {
	f.Add([]byte(" C \r\nD \t E\r\n\r\n\r\n"), 3)
	f.Fuzz(func(t *testing.T, in []byte, step int) {
		if step <= 0 || step > len(in) {
			step = 1
		}
		a, b := relaxedBodyOf(string(in), len(in)+1), relaxedBodyOf(string(in), step)
		if a != b {
			t.Fatalf("chunked %q != whole %q", b, a)
		}
		if strings.HasSuffix(a, "\r\n\r\n") || strings.Contains(a, " \r\n") {
			t.Fatalf("not canonical: %q", a)
		}
	})
}

func TestReadHeader(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("From: a@b\r\nSubject: one\r\n two\r\n\r\nbody"))
	fs, err := readHeader(br, 1000)
	if err != nil || len(fs) != 2 || fs[1].raw != "Subject: one\r\n two" || fs[1].lname != "subject" {
		t.Fatalf("%+v %v", fs, err)
	}
	rest, _ := br.ReadString(0)
	if rest != "body" {
		t.Fatalf("body %q", rest)
	}
	for _, bad := range []string{" folded first\r\n\r\n", "no colon\r\n\r\n"} {
		if _, err := readHeader(bufio.NewReader(strings.NewReader(bad)), 1000); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := readHeader(bufio.NewReader(strings.NewReader(strings.Repeat("X: y\r\n", 100))), 100); err == nil {
		t.Error("header over the limit accepted")
	}
}

func BenchmarkRelaxedBody(b *testing.B) {
	body := bytes.Repeat([]byte("The quick brown fox  jumps over the lazy dog.\t \r\n"), 20000)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		rb := newRelaxedBody(sha256.New())
		rb.Write(body)
		rb.Sum()
	}
}
