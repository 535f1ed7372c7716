package dlp

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-pdf/fpdf"

	"sealpost/internal/testutil"
)

const pdfBody = "Referral for Jane Citizen.\nNHS no. 943 476 5919.\nNI number AB 12 34 56 C.\nCard 4111 1111 1111 1111."

// makePDF writes a two-page PDF with fpdf: core font (WinAnsi strings) or,
// when ttf is set, an embedded TrueType subset (Identity-H codes mapped by
// a ToUnicode CMap, as Word and browsers write).
func makePDF(t *testing.T, ttf string, compress bool) []byte {
	t.Helper()
	p := fpdf.New("P", "mm", "A4", "")
	p.SetCompression(compress)
	font := "Helvetica"
	if ttf != "" {
		b, err := os.ReadFile(ttf)
		if err != nil {
			t.Fatal(err)
		}
		p.AddUTF8FontFromBytes("dejavu", "", b)
		font = "dejavu"
	}
	p.AddPage()
	p.SetFont(font, "", 11)
	p.MultiCell(0, 6, "Nothing personal on the first page, just prose about the weather in Leeds.", "", "", false)
	p.AddPage()
	p.SetFont(font, "", 11)
	p.MultiCell(0, 6, pdfBody, "", "", false)
	var b bytes.Buffer
	if err := p.Output(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func scanPDF(t *testing.T, data []byte) map[string]string {
	t.Helper()
	e, _ := NewEngine(nil, DefaultLimits)
	got := map[string]string{}
	for _, f := range e.ScanDocument("r.pdf", data).Findings {
		got[f.Detector] = f.Confidence
	}
	return got
}

func wantPDFFindings(t *testing.T, name string, got map[string]string) {
	t.Helper()
	for _, d := range []string{NHS, NINO, Card} {
		if got[d] != "high" {
			t.Errorf("%s: %s = %q, want high (all: %v)", name, d, got[d], got)
		}
	}
	if got[Unscannable] != "" {
		t.Errorf("%s: unscannable", name)
	}
}

func TestPDFText(t *testing.T) {
	wantPDFFindings(t, "core font, compressed", scanPDF(t, makePDF(t, "", true)))
	wantPDFFindings(t, "core font, plain", scanPDF(t, makePDF(t, "", false)))
	ttf := "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
	if _, err := os.Stat(ttf); err != nil {
		testutil.Missing(t, "no DejaVu font (fonts-dejavu-core)")
	}
	uni := makePDF(t, ttf, true)
	wantPDFFindings(t, "embedded TrueType, Identity-H + ToUnicode", scanPDF(t, uni))

	// PDF 1.5 object streams and cross-reference streams, as qpdf (and Word) write them.
	if _, err := exec.LookPath("qpdf"); err != nil {
		testutil.Missing(t, "qpdf is not installed")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.pdf"), filepath.Join(dir, "out.pdf")
	os.WriteFile(in, uni, 0o600)
	if b, err := exec.Command("qpdf", "--object-streams=generate", in, out).CombinedOutput(); err != nil {
		t.Fatalf("qpdf: %v\n%s", err, b)
	}
	os2, _ := os.ReadFile(out)
	if !bytes.Contains(os2, []byte("/ObjStm")) {
		t.Fatal("qpdf wrote no object stream")
	}
	wantPDFFindings(t, "object streams", scanPDF(t, os2))

	// Encrypted: unscannable, never a pass.
	enc := filepath.Join(dir, "enc.pdf")
	if b, err := exec.Command("qpdf", "--encrypt", "user", "owner", "256", "--", in, enc).CombinedOutput(); err != nil {
		t.Fatalf("qpdf encrypt: %v\n%s", err, b)
	}
	eb, _ := os.ReadFile(enc)
	if got := scanPDF(t, eb); got[Unscannable] != "high" || got[NHS] != "" {
		t.Fatalf("encrypted PDF: %v", got)
	}
}

// TestPDFTextAgreesWithPdftotext: what we extract contains the identifiers
// where poppler's pdftotext finds them.
func TestPDFTextAgreesWithPdftotext(t *testing.T) {
	if _, err := exec.LookPath("pdftotext"); err != nil {
		testutil.Missing(t, "pdftotext (poppler-utils) is not installed")
	}
	ttf := "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
	for _, name := range []string{"core", "ttf"} {
		var data []byte
		if name == "core" {
			data = makePDF(t, "", true)
		} else if _, err := os.Stat(ttf); err == nil {
			data = makePDF(t, ttf, true)
		} else {
			continue
		}
		f := filepath.Join(t.TempDir(), "x.pdf")
		os.WriteFile(f, data, 0o600)
		ref, err := exec.Command("pdftotext", f, "-").Output()
		if err != nil {
			t.Fatal(err)
		}
		ours, err := pdfText(data, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		norm := func(b []byte) string { return strings.Join(strings.Fields(string(b)), " ") }
		for _, want := range []string{"943 476 5919", "AB 12 34 56 C", "4111 1111 1111 1111", "weather in Leeds"} {
			if !strings.Contains(norm(ref), want) {
				t.Fatalf("%s: pdftotext lacks %q", name, want)
			}
			if !strings.Contains(norm(ours), want) {
				t.Errorf("%s: ours lacks %q; ours:\n%s", name, want, ours)
			}
		}
	}
}

func FuzzPDF(f *testing.F) {
	f.Add([]byte("%PDF-1.4\n1 0 obj << /Type /Page /Contents 2 0 R >> endobj\n2 0 obj << /Length 20 >> stream\nBT (AB 12 34 56 C) Tj ET\nendstream endobj"))
	f.Add([]byte("%PDF-1.5\n1 0 obj << /Type /ObjStm /N 1 /First 4 /Length 10 >> stream\n2 0 <<>>\nendstream endobj"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pdfText(b, 1<<20)
	})
}

func TestScannedPDFIsUnscannable(t *testing.T) {
	p := fpdf.New("P", "mm", "A4", "")
	p.AddPage()
	// a 1x1 PNG, standing for a scanned page
	png1x1 := []byte{0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0xf8, 0xff, 0xff, 0x3f, 0x00, 0x05, 0xfe, 0x02, 0xfe, 0xdc, 0xcc, 0x59, 0xe7, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82}
	p.RegisterImageOptionsReader("scan", fpdf.ImageOptions{ImageType: "PNG"}, bytes.NewReader(png1x1))
	p.ImageOptions("scan", 10, 10, 100, 100, false, fpdf.ImageOptions{ImageType: "PNG"}, 0, "")
	var b bytes.Buffer
	if err := p.Output(&b); err != nil {
		t.Fatal(err)
	}
	if got := scanPDF(t, b.Bytes()); got[Unscannable] != "high" {
		t.Fatalf("scanned PDF: %v", got)
	}
}
