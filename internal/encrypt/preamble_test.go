package encrypt

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
)

const encryptedSample = "From: a@example.gov.uk\r\nTo: b@partner.example\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: multipart/encrypted;\r\n protocol=\"application/pgp-encrypted\";\r\n boundary=\"b1\"\r\n" +
	"X-After: kept\r\n\r\n--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--b1\r\n" +
	"Content-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\nabc\r\n-----END PGP MESSAGE-----\r\n\r\n--b1--\r\n"

// TestWrapWithPreamble: the Content-* fields (folded lines with them) move
// to the inner part, every other field stays outside once, MIME-Version is
// written once, and the inner entity's bytes are unchanged.
func TestWrapWithPreamble(t *testing.T) {
	var out bytes.Buffer
	if err := WrapWithPreamble(&out, strings.NewReader(encryptedSample), "Read it at https://portal.example/m/x\n"); err != nil {
		t.Fatal(err)
	}
	m, err := mail.ReadMessage(&out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("X-After") != "kept" || m.Header.Get("Subject") == "" || len(m.Header["Mime-Version"]) != 1 {
		t.Fatalf("outer header %v", m.Header)
	}
	mt, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if mt != "multipart/mixed" {
		t.Fatal(mt)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	p, _ := mr.NextPart()
	text, _ := io.ReadAll(p)
	if string(text) != "Read it at https://portal.example/m/x\r\n" {
		t.Fatalf("preamble %q", text)
	}
	p, err = mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	imt, ip, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
	if imt != "multipart/encrypted" || ip["protocol"] != "application/pgp-encrypted" || ip["boundary"] != "b1" {
		t.Fatalf("inner %q", p.Header.Get("Content-Type"))
	}
	body, _ := io.ReadAll(p)
	want := encryptedSample[strings.Index(encryptedSample, "\r\n\r\n")+4:]
	if string(body) != want {
		t.Fatalf("inner body changed:\n%q\nwant\n%q", body, want)
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Fatal("a third part")
	}
	for _, bad := range []string{"", "no header end", "X: y\r\n\r\nbody", " cont\r\n\r\n", "nocolon\r\n\r\n"} {
		if err := WrapWithPreamble(io.Discard, strings.NewReader(bad), "x"); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzWrapWithPreamble(f *testing.F) {
	f.Add([]byte(encryptedSample), "see https://p/m/x")
	f.Add([]byte("Content-Type: application/pkcs7-mime\r\n\r\nMIIB"), "")
	f.Fuzz(func(t *testing.T, enc []byte, text string) {
		var out bytes.Buffer
		if err := WrapWithPreamble(&out, bytes.NewReader(enc), text); err != nil {
			return
		}
		if _, err := mail.ReadMessage(bytes.NewReader(out.Bytes())); err != nil {
			t.Fatalf("wrapped output is no message: %v", err)
		}
	})
}
