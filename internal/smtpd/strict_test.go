package smtpd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readData runs the DATA reader over in (what follows the 354 reply) and
// returns the message, the first error and what is left for the next
// command.
func readData(in string, max int64, bufSize int) (string, error, string) {
	br := bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(in)), bufSize)
	d := &dataReader{br: br, max: max, deadline: func() {}}
	got, err := io.ReadAll(d)
	d.drain()
	rest, _ := io.ReadAll(br)
	return string(got), err, string(rest)
}

func TestDataReader(t *testing.T) {
	test := func(in, want string, wantErr error, rest string) {
		t.Helper()
		got, err, r := readData(in+"NEXT\r\n", 1000, 64)
		if !errors.Is(err, wantErr) && !(wantErr == nil && err == nil) {
			t.Errorf("%q: error %v, want %v", in, err, wantErr)
		}
		if wantErr == nil && got != want {
			t.Errorf("%q: message %q, want %q", in, got, want)
		}
		if r != rest+"NEXT\r\n" {
			t.Errorf("%q: left %q, want %q: the session lost its place", in, r, rest+"NEXT\r\n")
		}
	}
	test("Subject: x\r\n\r\nbody\r\n.\r\n", "Subject: x\r\n\r\nbody\r\n", nil, "")
	test(".\r\n", "", nil, "")
	test("..leading dot\r\n...\r\n.\r\n", ".leading dot\r\n..\r\n", nil, "")
	test("8bit \xc3\xa9\r\n.\r\n", "8bit \xc3\xa9\r\n", nil, "")
	// Smuggling: none of these ends the data; all are refused.
	test("a\n.\nMAIL FROM:<x@y>\r\n.\r\n", "", errBareLF, "")
	test("a\r.\rMAIL FROM:<x@y>\r\n.\r\n", "", errBareCR, "")
	test("a\r\n.\rMAIL FROM:<x@y>\r\n.\r\n", "", errBareCR, "")
	test("a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n", "", errBareLF, "")
	test("a\r\n\x00.\r\n.\r\n", "", errNUL, "")
	test("a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n", "", errBareLF, "") // "\n.\r\n" is not an end
	test("\n.\r\nMAIL FROM:<x@y>\r\n.\r\n", "", errBareLF, "")
	// Too big, too long: refused, and the session stays in step.
	test(strings.Repeat(strings.Repeat("y", 48)+"\r\n", 30)+".\r\n", "", errTooBig, "")
	test(strings.Repeat("z", 62)+".\r\nMAIL FROM:<x@y>\r\n.\r\n", "", errLongLine, "")
}

// FuzzDataReader: whatever the client sends, the reader either returns the
// message (no bare CR/LF, no NUL: it is clean CRLF text) or an error, and
// the end of data it finds is a real "\r\n.\r\n" (or the stream's start).
func FuzzDataReader(f *testing.F) {
	for _, s := range []string{"a\r\n.\r\n", "\n.\n", "\r.\r\n.\r\n", ".\r\n", "x\x00\r\n.\r\n", "a\n.\r\nX\r\n.\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err, rest := readData(string(in), 1<<20, 64)
		consumed := string(in[:len(in)-len(rest)])
		if !(strings.HasSuffix(consumed, "\r\n.\r\n") || consumed == ".\r\n") && len(rest) > 0 {
			t.Fatalf("stopped at %q, not at an end of data", consumed)
		}
		if err == nil {
			b := []byte(got)
			if bytes.Contains(b, []byte{0}) || bytes.Count(b, []byte("\r")) != bytes.Count(b, []byte("\n")) || bytes.Count(b, []byte("\r\n")) != bytes.Count(b, []byte("\n")) {
				t.Fatalf("unclean message %q from %q", got, in)
			}
		}
	})
}

func TestParsePath(t *testing.T) {
	for in, want := range map[string]string{
		"FROM:<a@b.example>": "a@b.example", "from: <a@b.example> SIZE=10": "a@b.example", "FROM:<>": "",
		"FROM:<@relay:a@b.example>": "a@b.example",
	} {
		got, _, ok := parsePath(in, "FROM:")
		if !ok || got != want {
			t.Errorf("%q: %q %v", in, got, ok)
		}
	}
	for _, in := range []string{"FROM:a@b", "TO:<a@b>", "FROM:<a@b", ""} {
		if _, _, ok := parsePath(in, "FROM:"); ok {
			t.Errorf("%q accepted", in)
		}
	}
	if _, p, _ := parsePath("FROM:<a@b> SIZE=1 BODY=8BITMIME", "FROM:"); len(p) != 2 {
		t.Errorf("params %v", p)
	}
}

func TestValidAddress(t *testing.T) {
	for a, want := range map[string]bool{
		"a@b.example": true, "first.last+tag@sub.example.gov.uk": true, "用户@例子.广告": true,
		"": false, "a@": false, "@b": false, "a b@c": false, "a@[127.0.0.1]": false, "a@b..c": false,
		string(make([]byte, 65)) + "@b": false,
	} {
		if got := ValidAddress(a); got != want {
			t.Errorf("ValidAddress(%q) = %v", a, got)
		}
	}
}
