package dlp

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

func zipOf(t testing.TB, files map[string][]byte, method uint16) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, data := range files {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	zw.Close()
	return b.Bytes()
}

func docx(t testing.TB, paragraphs ...string) []byte {
	var body strings.Builder
	for _, p := range paragraphs {
		body.WriteString(`<w:p>`)
		// Split each paragraph over runs, as Word does.
		for _, run := range strings.SplitAfter(p, " ") {
			fmt.Fprintf(&body, `<w:r><w:t xml:space="preserve">%s</w:t></w:r>`, run)
		}
		body.WriteString(`</w:p>`)
	}
	return zipOf(t, map[string][]byte{
		"[Content_Types].xml": []byte(`<?xml version="1.0"?><Types/>`),
		"word/document.xml":   []byte(`<?xml version="1.0"?><w:document xmlns:w="x"><w:body>` + body.String() + `</w:body></w:document>`),
		"docProps/core.xml":   []byte(`<x>9434765919</x>`), // metadata is not document text
	}, zip.Deflate)
}

func b64lines(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 76 {
		out.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	return out.String() + s + "\r\n"
}

func message(subject string, parts ...string) string {
	var b strings.Builder
	b.WriteString("From: staff@example.gov.uk\r\nTo: x@partner.example\r\nSubject: " + subject + "\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n")
	for _, p := range parts {
		b.WriteString("--b1\r\n" + p)
	}
	b.WriteString("--b1--\r\n")
	return b.String()
}

func findings(r *Result) string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, fmt.Sprintf("%s:%d:%s@%s", f.Detector, f.Count, f.Confidence, f.Where))
	}
	return strings.Join(out, " ")
}

func TestMessageWithDocxInZip(t *testing.T) {
	inner := docx(t, "Referral for patient, NHS no. 943 476 5919.", "Second patient NHS 401 023 2137, NI AB 12 34 56 C (no context word, so medium).")
	archive := zipOf(t, map[string][]byte{"report.docx": inner, "notes.txt": []byte("nothing here")}, zip.Deflate)
	msg := message("[OFFICIAL-SENSITIVE] referrals",
		"Content-Type: text/plain; charset=utf-8\r\n\r\nPlease pay with card 4111 1111 1111 1111.\r\n",
		"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>NI number <b>AB</b>123456<span>C</span></p><p>sort code 08-99-99 account 66374958</p>\r\n",
		"Content-Type: application/zip; name=\"report.zip\"\r\nContent-Disposition: attachment; filename=\"report.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"+b64lines(archive),
	)
	e, _ := NewEngine(nil, DefaultLimits)
	r, err := e.ScanMessage(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	want := "uk-nhs-number:2:high@attachment:report.zip/report.docx uk-nino:1:medium@attachment:report.zip/report.docx payment-card:1:high@body uk-nino:1:high@body uk-sort-code-account:1:high@body"
	if got := findings(r); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if r.Classification != "OFFICIAL-SENSITIVE" {
		t.Fatalf("classification %q", r.Classification)
	}
}

func TestUnscannable(t *testing.T) {
	e, _ := NewEngine(nil, DefaultLimits)
	bomb := zipOf(t, map[string][]byte{"zeros.txt": make([]byte, 50<<20)}, zip.Deflate)
	encrypted := zipOf(t, map[string][]byte{"secret.txt": []byte("x")}, zip.Store)
	// Set the encrypted flag in the local and central headers.
	encrypted = bytes.Replace(encrypted, []byte("PK\x03\x04\x14\x00\x08\x00"), []byte("PK\x03\x04\x14\x00\x09\x00"), 1)
	encrypted = bytes.Replace(encrypted, []byte("PK\x01\x02\x14\x00\x14\x00\x08\x00"), []byte("PK\x01\x02\x14\x00\x14\x00\x09\x00"), 1)
	test := func(name string, data []byte, wantWhy string) {
		t.Helper()
		r := e.ScanDocument(name, data)
		got := findings(r)
		if !strings.Contains(got, "unscannable") || !strings.Contains(fmt.Sprint(r.Findings), wantWhy) {
			t.Errorf("%s: %s (want unscannable, %s)", name, got, wantWhy)
		}
	}
	test("bomb.zip", bomb, "compression ratio")
	test("enc.zip", encrypted, "encrypted")
	test("corrupt.docx", []byte("PK\x03\x04garbage"), "corrupt archive")
	test("scan.pdf", []byte("%PDF-1.7\n..."), "PDF")
	test("legacy.doc", []byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest"), "Office")
	// Nesting past the limit.
	nested := zipOf(t, map[string][]byte{"a.txt": []byte("NHS 943 476 5919")}, zip.Deflate)
	for i := 0; i < 8; i++ {
		nested = zipOf(t, map[string][]byte{fmt.Sprintf("l%d.zip", i): nested}, zip.Deflate)
	}
	test("deep.zip", nested, "nested too deep")
}

func TestCustomDetectors(t *testing.T) {
	e, err := NewEngine([]Custom{{Name: "project-falcon", Keywords: []string{"Project Falcon", "FALCON-7"}, Patterns: []string{`\bFAL-[0-9]{6}\b`}}}, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	r := e.ScanDocument("a.txt", []byte("About PROJECT FALCON: see FAL-123456 and falcon-7; not falcon-77 or projectfalcon."))
	if got := findings(r); got != "project-falcon:3:high@file:a.txt" {
		t.Fatalf("got %s", got)
	}
	if _, err := NewEngine([]Custom{{Name: "x", Patterns: []string{"("}}}, DefaultLimits); err == nil {
		t.Fatal("bad pattern accepted")
	}
}

func TestMarking(t *testing.T) {
	for subj, want := range map[string]string{
		"OFFICIAL-SENSITIVE PERSONAL: case notes": "OFFICIAL-SENSITIVE",
		"[OFFICIAL] minutes":                      "OFFICIAL",
		"OFFICIAL SENSITIVE - staff":              "OFFICIAL-SENSITIVE",
		"the official response":                   "",
		"OFFICIALLY late":                         "",
		"":                                        "",
	} {
		if got := Marking(subj, nil); got != want {
			t.Errorf("%q: %q, want %q", subj, got, want)
		}
	}
}

func FuzzScanMessage(f *testing.F) {
	f.Add([]byte(message("x", "Content-Type: text/plain\r\n\r\nNHS 943 476 5919\r\n")))
	f.Add([]byte("Subject: =?utf-8?b?w6k=?=\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n--x--"))
	e, _ := NewEngine(nil, Limits{MaxDepth: 4, MaxBytes: 1 << 20, MaxRatio: 100, Timeout: DefaultLimits.Timeout})
	f.Fuzz(func(t *testing.T, b []byte) {
		e.ScanMessage(bytes.NewReader(b)) // never panics; malformed input is unscannable, not an error
		e.ScanDocument("x.zip", b)
	})
}

func TestSensitivityLabels(t *testing.T) {
	e, err := NewEngine(nil, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	e.SetLabels(map[string]string{"3c5d1e2f-0000-4000-8000-00000000aaaa": "OFFICIAL-SENSITIVE", "Personal": "OFFICIAL-SENSITIVE"})
	test := func(hdr, want string) {
		t.Helper()
		msg := "From: a@example.gov.uk\r\nSubject: hello\r\n" + hdr + "\r\n\r\nbody\r\n"
		r, err := e.ScanMessage(strings.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		if r.Classification != want {
			t.Errorf("%q: classification %q, want %q", hdr, r.Classification, want)
		}
	}
	test("msip_labels: MSIP_Label_3c5d1e2f-0000-4000-8000-00000000aaaa_Enabled=true; MSIP_Label_3c5d1e2f-0000-4000-8000-00000000aaaa_Name=Restricted; MSIP_Label_3c5d1e2f-0000-4000-8000-00000000aaaa_SiteId=x", "OFFICIAL-SENSITIVE")
	test("msip_labels: MSIP_Label_1_Enabled=true; MSIP_Label_1_Name=Official Sensitive", "OFFICIAL-SENSITIVE")
	test("msip_labels: MSIP_Label_1_Enabled=true; MSIP_Label_1_Name=OFFICIAL", "OFFICIAL")
	test("msip_labels: MSIP_Label_1_Enabled=false; MSIP_Label_1_Name=OFFICIAL-SENSITIVE", "")
	test("msip_labels: MSIP_Label_2_Enabled=true; MSIP_Label_2_Name=Personal", "OFFICIAL-SENSITIVE")
	test("msip_labels: MSIP_Label_2_Enabled=true; MSIP_Label_2_Name=General", "")
	test("msip_labels: garbage;;=;MSIP_Label_=", "")
}

func TestLargeTextPartStreams(t *testing.T) {
	e, _ := NewEngine(nil, DefaultLimits)
	// 5 MB of prose with an NHS number near the end, past several chunks.
	var b strings.Builder
	b.WriteString("From: a@example.gov.uk\r\nSubject: big\r\nContent-Type: text/plain\r\n\r\n")
	for b.Len() < 5<<20 {
		b.WriteString("The quick brown fox jumps over the lazy dog again and again.\r\n")
	}
	b.WriteString("Patient NHS number 943 476 5919\r\n")
	r, err := e.ScanMessage(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Findings) != 1 || r.Findings[0].Detector != "uk-nhs-number" {
		t.Fatalf("%+v", r.Findings)
	}
}
