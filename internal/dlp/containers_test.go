package dlp

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"hash/crc32"
	"os"
	"os/exec"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

const patientsCSV = "name,nhs number\r\nA,943 476 5919\r\nB,401 023 2137\r\n"

func tarOf(t testing.TB, name string, data []byte) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
	tw.Write(data)
	tw.Close()
	return b.Bytes()
}

func gz(data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	w.Close()
	return b.Bytes()
}

// rar5Stored writes a RAR 5 archive holding one stored (uncompressed) file,
// by the RAR 5.0 archive format specification (rarlab.com/technote.htm).
func rar5Stored(name string, data []byte) []byte {
	vint := func(b []byte, v uint64) []byte {
		for v >= 0x80 {
			b = append(b, byte(v)|0x80)
			v >>= 7
		}
		return append(b, byte(v))
	}
	block := func(body []byte) []byte {
		sz := vint(nil, uint64(len(body)))
		h := append(sz, body...)
		var c [4]byte
		v := crc32.ChecksumIEEE(h)
		c[0], c[1], c[2], c[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		return append(c[:], h...)
	}
	out := []byte("Rar!\x1a\x07\x01\x00")
	out = append(out, block([]byte{1, 0, 0})...) // main header: type 1, no flags, no archive flags
	var fh []byte
	fh = vint(fh, 2)                 // file header
	fh = vint(fh, 2)                 // flags: data area present
	fh = vint(fh, uint64(len(data))) // data size
	fh = vint(fh, 4)                 // file flags: CRC32 present
	fh = vint(fh, uint64(len(data))) // unpacked size
	fh = vint(fh, 0x20)              // attributes
	v := crc32.ChecksumIEEE(data)
	fh = append(fh, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
	fh = vint(fh, 0)                 // compression: version 0, method 0 (store)
	fh = vint(fh, 1)                 // host OS: Unix
	fh = vint(fh, uint64(len(name))) // name
	fh = append(fh, name...)
	out = append(out, block(fh)...)
	out = append(out, data...)
	return append(out, block([]byte{5, 0, 0})...) // end of archive
}

func utf16le(s string) []byte {
	out := []byte{0xff, 0xfe}
	for _, u := range utf16.Encode([]rune(s)) {
		out = append(out, byte(u), byte(u>>8))
	}
	return out
}

// TestContainersByContent: archives and encodings are read by what they
// are, whatever they are called; a name that lies changes nothing.
func TestContainersByContent(t *testing.T) {
	csv := []byte(patientsCSV)
	var xzb bytes.Buffer
	xw, _ := xz.NewWriter(&xzb)
	xw.Write(csv)
	xw.Close()
	zw, _ := zstd.NewWriter(nil)
	zst := zw.EncodeAll(csv, nil)
	cmd := exec.Command("bzip2", "-c")
	cmd.Stdin = bytes.NewReader(csv)
	bz2, err := cmd.Output()
	if err != nil {
		t.Fatalf("bzip2 (Debian bzip2): %v", err)
	}
	sevenZ, err := os.ReadFile("testdata/containers/patients.7z")
	if err != nil {
		t.Fatal(err)
	}
	u32 := []byte{0xff, 0xfe, 0, 0}
	for _, r := range "NHS 943 476 5919" {
		u32 = append(u32, byte(r), 0, 0, 0)
	}
	withNUL := append([]byte(patientsCSV), 0, 0, 0)
	cases := map[string][]byte{
		"report.gz":       gz(csv),
		"report.txt":      gz(csv), // a gzip under a text name
		"report.bz2":      bz2,
		"report.xz":       xzb.Bytes(),
		"report.zst":      zst,
		"report.tar":      tarOf(t, "patients.csv", csv),
		"report.tgz":      gz(tarOf(t, "patients.csv", csv)),
		"report.dat":      tarOf(t, "patients.csv", csv), // uncompressed tar: NUL bytes, still read
		"report.7z":       sevenZ,
		"report.rar":      rar5Stored("patients.csv", csv),
		"report.bin":      rar5Stored("patients.csv", csv),
		"unicode.txt":     utf16le(patientsCSV), // Excel's "Unicode text"
		"unicode32.txt":   u32,
		"mostly-text.log": withNUL,
	}
	e, _ := NewEngine(nil, DefaultLimits)
	for name, data := range cases {
		r := e.ScanDocument(name, data)
		if !has(r, NHS, "") {
			t.Errorf("%s: NHS numbers not found: %s", name, findings(r))
		}
	}
	// Within the bounds, or unscannable.
	bomb := gz(make([]byte, 40<<20))
	if r := e.ScanDocument("zeros.gz", bomb); !has(r, Unscannable, "") {
		t.Errorf("gzip bomb: %s", findings(r))
	}
	enc, _ := os.ReadFile("testdata/containers/encrypted.7z")
	if r := e.ScanDocument("secret.7z", enc); !has(r, Unscannable, "") {
		t.Errorf("encrypted 7z: %s", findings(r))
	}
	for name, data := range map[string][]byte{"bad.gz": []byte("\x1f\x8b\x08garbage"), "bad.rar": []byte("Rar!\x1a\x07\x01\x00junk"), "bad.xz": []byte("\xfd7zXZ\x00junk"), "bad.7z": []byte("7z\xbc\xaf\x27\x1cjunk")} {
		if r := e.ScanDocument(name, data); !has(r, Unscannable, "") {
			t.Errorf("%s: %s", name, findings(r))
		}
	}
}

// TestBOMInMail: a UTF-16 attachment with no charset, in a message.
func TestBOMInMail(t *testing.T) {
	msg := hdr + "Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=list.txt\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		b64lines(utf16le(strings.Repeat("Patient NHS number 943 476 5919\r\n", 3))) + "--b1--\r\n"
	if r := scanMsg(t, msg); !has(r, NHS, "attachment:list.txt") {
		t.Fatalf("%s", findings(r))
	}
}
