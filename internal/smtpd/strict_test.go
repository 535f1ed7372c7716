package smtpd

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestStrictReader(t *testing.T) {
	test := func(in string, want error) {
		t.Helper()
		// One byte at a time too, so that a CRLF split across reads is seen.
		for _, r := range []io.Reader{bytes.NewReader([]byte(in)), iotest.OneByteReader(bytes.NewReader([]byte(in)))} {
			got, err := io.ReadAll(&strictReader{r: r})
			if !errors.Is(err, want) && !(want == nil && err == nil) {
				t.Errorf("%q: error %v, want %v", in, err, want)
			}
			if want == nil && string(got) != in {
				t.Errorf("%q: passed through %q", in, got)
			}
		}
	}
	test("", nil)
	test("Subject: x\r\n\r\nbody\r\n", nil)
	test("a\r\nb\r\n\r\n", nil)
	test("8bit \xc3\xa9\r\n", nil)
	test("a\nb\r\n", errBareLF)
	test("\n", errBareLF)
	test("a\rb\r\n", errBareCR)
	test("a\r\r\n", errBareCR)
	test("a\r", errBareCR)
	test("a\x00b\r\n", errNUL)
	test("end\r\n.\n", errBareLF)
}

// FuzzStrictReader: the reader passes input through unchanged exactly when it
// has no NUL and every CR is followed by LF and every LF preceded by CR.
func FuzzStrictReader(f *testing.F) {
	for _, s := range []string{"a\r\nb", "\n.\n", "\r.\r", "\r\n.\r\n", "x\x00", "\r"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := io.ReadAll(&strictReader{r: iotest.HalfReader(bytes.NewReader(in))})
		valid := !bytes.Contains(in, []byte{0})
		for i, c := range in {
			if c == '\r' && (i+1 >= len(in) || in[i+1] != '\n') {
				valid = false
			}
			if c == '\n' && (i == 0 || in[i-1] != '\r') {
				valid = false
			}
		}
		if valid != (err == nil) {
			t.Fatalf("%q: valid=%v err=%v", in, valid, err)
		}
		if !bytes.HasPrefix(in, got) {
			t.Fatalf("%q: output %q is not a prefix", in, got)
		}
	})
}

func TestHeaderCapture(t *testing.T) {
	h := &headerCapture{max: 1 << 10}
	msg := "Received: a\r\nReceived: b\r\nFrom: \"Ann\" <ann@Example.GOV.uk>\r\nSubject: =?utf-8?q?caf=C3=A9?= report\r\nMessage-ID: <x@y>\r\n\r\nFrom: not@header\r\n"
	for i := 0; i < len(msg); i += 7 {
		h.Write([]byte(msg[i:min(i+7, len(msg))]))
	}
	hi := h.info()
	if hi.From != "ann@example.gov.uk" || hi.Subject != "café report" || hi.MessageID != "x@y" || hi.Received != 2 || hi.FromCount != 1 {
		t.Fatalf("%+v", hi)
	}
	h = &headerCapture{max: 1 << 10}
	h.Write([]byte("From: a@b.example\r\nFrom: c@d.example\r\n\r\n"))
	if hi := h.info(); hi.From != "" || hi.FromCount != 2 {
		t.Fatalf("two From fields: %+v", hi)
	}
}

func FuzzHeaderCapture(f *testing.F) {
	f.Add([]byte("From: a@b\r\nSubject: x\r\n\r\nbody"), 5)
	f.Add([]byte("\r\n\r\n"), 1)
	f.Fuzz(func(t *testing.T, in []byte, step int) {
		if step <= 0 {
			step = 1
		}
		h := &headerCapture{max: 512}
		for i := 0; i < len(in); i += step {
			h.Write(in[i:min(i+step, len(in))])
		}
		if len(h.buf) > 512 {
			t.Fatalf("captured %d bytes, max 512", len(h.buf))
		}
		h.info() // must not panic
	})
}

func TestValidAddress(t *testing.T) {
	for a, want := range map[string]bool{
		"a@b.example": true, "first.last+tag@sub.example.gov.uk": true, "用户@例子.广告": true,
		"": false, "a@": false, "@b": false, "a b@c": false, "a@[127.0.0.1]": false, "a@b..c": false,
		string(make([]byte, 65)) + "@b": false,
	} {
		if got := validAddress(a); got != want {
			t.Errorf("validAddress(%q) = %v", a, got)
		}
	}
}
