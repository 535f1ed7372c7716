package attach

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// wrap puts a raw attachment header and body into a multipart message.
func wrap(partHeader, body string) []byte {
	return []byte("From: a@example.org\r\nTo: b@example.gov.uk\r\nSubject: t\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n" +
		"--XX\r\n" + partHeader + "\r\n\r\n" + body + "\r\n--XX--\r\n")
}

// TestAmbiguousMIME: headers that clients read differently (the tricks of
// the mime-is-broken collection: RFC 2231 forms beside plain ones,
// comments, duplicated parameters, broken boundaries) make a part
// dangerous even when its content is harmless text.
func TestAmbiguousMIME(t *testing.T) {
	t.Parallel()
	c := checker(t)
	const text = "aGFybWxlc3MgdGV4dA==" // "harmless text"
	test := func(name string, msg []byte, want string) {
		t.Helper()
		fs, err := c.Check(bytes.NewReader(msg))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want == "" && len(fs) != 0 {
			t.Errorf("%s: flagged: %+v", name, fs)
		}
		if want != "" && !has(fs, want) {
			t.Errorf("%s: want %s, got %+v", name, want, fs)
		}
	}
	b64 := "\r\nContent-Transfer-Encoding: base64"
	pdf := base64.StdEncoding.EncodeToString([]byte(minimalPDF))
	test("plain filename and RFC 2231 filename disagree",
		wrap("Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"report.txt\"; filename*=UTF-8''report.exe"+b64, text), AmbiguousMIME)
	test("RFC 2231 continuation hides .exe",
		wrap("Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*0=\"report.t\"; filename*1=\"xt.e\"; filename*2=\"xe\""+b64, text), DoubleExt)
	test("comment inside the filename parameter",
		wrap("Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=(a comment)\"report.exe\""+b64, text), AmbiguousMIME)
	test("duplicated filename",
		wrap("Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"a.txt\"; filename=\"a.exe\""+b64, text), AmbiguousMIME)
	test("name and filename disagree",
		wrap("Content-Type: application/octet-stream; name=\"a.txt\"\r\nContent-Disposition: attachment; filename=\"b.js\""+b64, text), AmbiguousMIME)
	test("two Content-Disposition fields",
		wrap("Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"a.txt\"\r\nContent-Disposition: attachment; filename=\"a.pdf\""+b64, text), AmbiguousMIME)
	test("two Content-Type fields",
		wrap("Content-Type: text/plain\r\nContent-Type: application/x-msdownload"+b64, text), AmbiguousMIME)
	test("two boundaries",
		[]byte("From: a@example.org\r\nSubject: t\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"A\"; boundary=\"B\"\r\n\r\n"+
			"--A\r\nContent-Type: text/plain\r\n\r\nx\r\n--B\r\nContent-Type: application/octet-stream\r\n\r\ny\r\n--A--\r\n--B--\r\n"), AmbiguousMIME)
	test("no usable boundary",
		[]byte("From: a@example.org\r\nSubject: t\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\nhello\r\n"), AmbiguousMIME)
	test("boundary never closed, hidden part after a bare CR",
		[]byte("From: a@example.org\r\nSubject: t\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"+
			"--XX\r\nContent-Type: text/plain\r\n\r\nx\r--XX\r\nContent-Type: application/octet-stream; name=\"a.exe\"\r\n\r\nMZ\r\n"), Executable)
	test("clean RFC 2231 name",
		wrap("Content-Type: application/pdf\r\nContent-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"+b64, pdf), "")
	test("clean RFC 2047 name",
		wrap("Content-Type: application/pdf; name=\"=?UTF-8?Q?r=C3=A9sum=C3=A9.pdf?=\"\r\nContent-Disposition: attachment; filename=\"=?UTF-8?Q?r=C3=A9sum=C3=A9.pdf?=\""+b64, pdf), "")
}

// TestCorpusClean: ordinary mail from other projects' MIME corpora is not
// flagged.
func TestCorpusClean(t *testing.T) {
	t.Parallel()
	c := checker(t)
	files, err := filepath.Glob("../../testdata/mime-clean/*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), "LICENSE") || strings.HasSuffix(f, ".md") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n++
		fs, err := c.Check(bytes.NewReader(b))
		if err != nil || len(fs) != 0 {
			t.Errorf("%s: %v %+v", filepath.Base(f), err, fs)
		}
	}
	if n < 15 {
		t.Fatalf("only %d corpus messages", n)
	}
}
