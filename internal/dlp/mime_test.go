package dlp

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// nhsZip is a zip of NHS numbers (test numbers with valid check digits).
func nhsZip(t testing.TB) []byte {
	return zipOf(t, map[string][]byte{"patients.csv": []byte("name,nhs number\r\nA,943 476 5919\r\nB,401 023 2137\r\n")}, zip.Deflate)
}

const hdr = "From: staff@example.gov.uk\r\nTo: x@partner.example\r\nSubject: files\r\nMIME-Version: 1.0\r\n"

// attach is a base64 attachment part (header and body, no delimiter).
func attach(t testing.TB, extra string) string {
	return "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"patients.zip\"" + extra + "\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64lines(nhsZip(t))
}

func scanMsg(t *testing.T, msg string) *Result {
	t.Helper()
	e, _ := NewEngine(nil, DefaultLimits)
	r, err := e.ScanMessage(strings.NewReader(msg))
	if err != nil {
		t.Fatalf("ScanMessage: %v", err)
	}
	return r
}

func has(r *Result, det, whereContains string) bool {
	for _, f := range r.Findings {
		if f.Detector == det && strings.Contains(f.Where, whereContains) {
			return true
		}
	}
	return false
}

// TestBrokenMIME: each class of ambiguous or broken MIME that hides an
// attachment from a strict parser. The zip of NHS numbers must be found
// (or, where the structure cannot be read, the message is unscannable);
// never clean.
func TestBrokenMIME(t *testing.T) {
	body := func(b string) string {
		return "--" + b + "\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--" + b + "\r\n" + attach(t, "") + "--" + b + "--\r\n"
	}
	cases := []struct {
		name, ct, body string
		unscannable    bool // the structure is ambiguous: also unscannable
	}{
		{"comment before key (the repro)", "multipart/mixed; ()boundary=b1", body("b1"), false},
		{"comment in value", "multipart/mixed; boundary=(c)b1", body("b1"), false},
		{"comment after type", "multipart/mixed(x); boundary=b1", body("b1"), false},
		{"escaped boundary", `multipart/mixed; boundary="b\1"`, body("b1"), false},
		{"escaped unquoted", `multipart/mixed; boundary=b\"1\"`, body(`b"1"`), false},
		{"duplicated boundary, good first", "multipart/mixed; boundary=b1; boundary=zz", body("b1"), false},
		{"duplicated boundary, bad first", "multipart/mixed; boundary=zz; boundary=b1", body("b1"), false},
		{"duplicated boundary, both used", "multipart/mixed; boundary=b1; boundary=b2", body("b1") + body("b2"), true},
		{"RFC 2231 boundary", "multipart/mixed; boundary*0*=''b; boundary*1=1", body("b1"), false},
		{"RFC 2231 duplicated segment", "multipart/mixed; boundary*0*=''b; boundary*0*=''x; boundary*1=1", body("b1"), false},
		{"space in boundary", "multipart/mixed; boundary='b 1'", body("b 1"), false},
		{"CR in boundary", "multipart/mixed; boundary=\"b1\r\"", body("b1"), false},
		{"quoted type", `"multipart/mixed"; boundary=b1`, body("b1"), false},
		{"encoded-word type", "=?UTF-8?B?bXVsdGlwYXJ0?=/mixed; boundary=b1", body("b1"), false},
		{"x-multipart", "x-multipart/mixed; boundary=b1", body("b1"), false},
		{"missing type", "boundary=b1", body("b1"), false},
		{"boundary not in body", "multipart/mixed; boundary=nothere", body("b1"), false},
		{"no boundary at all", "multipart/mixed", "Content-Type: text/plain\r\n\r\n" + attach(t, ""), true},
		{"garbage type", "(((", "just text " + b64lines(nhsZip(t)), true},
		{"garbage type, attachment in lines", "(((", "just text\r\n" + b64lines(nhsZip(t)), true},
		{"bare CR after delimiter", "multipart/mixed; boundary=b1", "--b1\rContent-Type: text/plain\r\n\r\nx\r\n--b1\r" + attach(t, "") + "--b1--\r\n", false},
		{"white space and CR before delimiter", "multipart/mixed; boundary=b1", " \r--b1\r\nContent-Type: text/plain\r\n\r\nx\r\n \r--b1\r\n" + attach(t, "") + " \r--b1--\r\n", false},
		{"part header starts with a blank line", "multipart/mixed; boundary=b1", "--b1\r\n\r\n" + attach(t, "") + "--b1--\r\n", false},
		{"folded transfer encoding", "multipart/mixed; boundary=b1", "--b1\r\n" + strings.Replace(attach(t, ""), "\r\nContent-Transfer-Encoding", "\r\n Content-Transfer-Encoding", 1) + "--b1--\r\n", false},
		{"base64 with junk after padding", "multipart/mixed; boundary=b1", "--b1\r\n" + strings.TrimSuffix(attach(t, ""), "\r\n") + "====" + b64lines([]byte("innocent text")) + "--b1--\r\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := scanMsg(t, hdr+"Content-Type: "+c.ct+"\r\n\r\n"+c.body)
			if !has(r, NHS, "") && !(c.name == "garbage type" && has(r, Unscannable, "")) {
				t.Errorf("NHS numbers not found: %s", findings(r))
			}
			if c.unscannable && !has(r, Unscannable, "") {
				t.Errorf("ambiguous structure not reported unscannable: %s", findings(r))
			}
		})
	}
}

// TestHiddenHeaders: the multipart Content-Type hidden in a folded line,
// after a bare CR, or in a header line with a space before its colon.
func TestHiddenHeaders(t *testing.T) {
	b := "--b1\r\nContent-Type: text/plain\r\n\r\nx\r\n--b1\r\n" + attach(t, "") + "--b1--\r\n"
	for name, h := range map[string]string{
		"folded after bad line": "X-Foo :bar\r\n Content-Type: multipart/mixed; boundary=b1\r\n",
		"after bare CR":         "X-Foo: bar\rContent-Type: multipart/mixed; boundary=b1\r\n",
		"junk continuation":     "X-Foo-bar\r\n Content-Type: multipart/mixed; boundary=b1\r\n",
		"space before colon":    "Content-Type : multipart/mixed; boundary=b1\r\n",
		"two content types":     "Content-Type: text/plain\r\nContent-Type: multipart/mixed; boundary=b1\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			r := scanMsg(t, hdr+h+"\r\n"+b)
			if !has(r, NHS, "") {
				t.Errorf("NHS numbers not found: %s", findings(r))
			}
		})
	}
}

// TestEmbeddedEncodings: message/global, uuencode and yEnc.
func TestEmbeddedEncodings(t *testing.T) {
	inner := hdr + "Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\n" + attach(t, "") + "--b1--\r\n"
	r := scanMsg(t, hdr+"Content-Type: message/global\r\n\r\n"+inner)
	if !has(r, NHS, "attachment:patients.zip") {
		t.Errorf("message/global: %s", findings(r))
	}
	uu := "begin 644 patients.zip\n" + uuencodeForTest(nhsZip(t)) + "`\nend\n"
	r = scanMsg(t, hdr+"\r\nSee below.\r\n\r\n"+uu)
	if !has(r, NHS, "attachment:patients.zip") {
		t.Errorf("uuencode: %s", findings(r))
	}
	y := "=ybegin line=128 size=100 name=patients.zip\r\n" + yencForTest(nhsZip(t)) + "\r\n=yend size=100\r\n"
	r = scanMsg(t, hdr+"\r\nSee below.\r\n\r\n"+y)
	if !has(r, NHS, "attachment:patients.zip") {
		t.Errorf("yEnc: %s", findings(r))
	}
}

// TestPartNames: the name findings are reported under is the one a mail
// client shows: RFC 2231 (also with an empty charset, which Go's
// mime.ParseMediaType drops), continuations, RFC 2047, disposition before
// type.
func TestPartNames(t *testing.T) {
	for ext, want := range map[string]string{
		"; filename*=''shown.zip":                                    "attachment:shown.zip",
		"; filename*=UTF-8''sh%6Fwn.zip":                             "attachment:shown.zip",
		"; filename*0=sho; filename*1=wn.zip":                        "attachment:shown.zip",
		"; filename=\"=?UTF-8?Q?shown.zip?=\"":                       "attachment:shown.zip",
		"; filename*0*=''sho; filename*1=\"wn.zip\"":                 "attachment:shown.zip",
		"; filename*=utf-16be''%00s%00h%00o%00w%00n%00.%00z%00i%00p": "attachment:shown.zip",
		"; filename*=iso-8859-1''sh%F6wn.zip":                        "attachment:shöwn.zip",
	} {
		msg := hdr + "Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\n" +
			strings.Replace(attach(t, ""), `; filename="patients.zip"`, ext, 1) + "--b1--\r\n"
		r := scanMsg(t, msg)
		if !has(r, NHS, want) {
			t.Errorf("%s: %s, want %s", ext, findings(r), want)
		}
	}
}

// TestCleanMailNotUnscannable: ordinary mail, including RFC 2231 names
// and a comment in a Content-Type, is not flagged.
func TestCleanMailNotUnscannable(t *testing.T) {
	for _, ct := range []string{
		"multipart/mixed; boundary=\"b1\"",
		"multipart/mixed; boundary=b1 (a comment)",
	} {
		msg := hdr + "Content-Type: " + ct + "\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello, the minutes are attached.\r\n--b1\r\n" +
			"Content-Type: application/pdf; name*=UTF-8''minutes.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64lines(onePagePDF(t, "Minutes of the meeting")) + "--b1--\r\n"
		if r := scanMsg(t, msg); len(r.Findings) != 0 {
			t.Errorf("%s: %s", ct, findings(r))
		}
	}
}

func uuencodeForTest(b []byte) string {
	var out strings.Builder
	enc := func(v byte) byte {
		if v == 0 {
			return '`'
		}
		return v + ' '
	}
	for len(b) > 0 {
		n := min(45, len(b))
		line := b[:n]
		b = b[n:]
		out.WriteByte(enc(byte(n)))
		for i := 0; i < len(line); i += 3 {
			var c [3]byte
			copy(c[:], line[i:])
			out.WriteByte(enc(c[0] >> 2))
			out.WriteByte(enc((c[0]<<4 | c[1]>>4) & 0x3f))
			out.WriteByte(enc((c[1]<<2 | c[2]>>6) & 0x3f))
			out.WriteByte(enc(c[2] & 0x3f))
		}
		out.WriteByte('\n')
	}
	return out.String()
}

func yencForTest(b []byte) string {
	var out bytes.Buffer
	col := 0
	for _, c := range b {
		o := c + 42
		if o == 0 || o == '\n' || o == '\r' || o == '=' {
			out.WriteByte('=')
			o += 64
			col++
		}
		out.WriteByte(o)
		col++
		if col >= 128 {
			out.WriteString("\r\n")
			col = 0
		}
	}
	return out.String()
}

var attachmentName = regexp.MustCompile(`(?im)^Content-(?:Disposition|Type):[^\n]*?\bfilename="?([A-Za-z0-9_.-]+\.[a-z]{2,4})"?`)

// TestMIMECorpora: every message of the enmime and MimeKit test corpora
// (testdata/mime) is scanned without a panic or an error, and every
// attachment a file names with a plain filename is read by the walk.
func TestMIMECorpora(t *testing.T) {
	var files []string
	filepath.Walk("testdata/mime", func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && (strings.HasSuffix(p, ".raw") || strings.HasSuffix(p, ".eml") || strings.Contains(p, "/messages/")) {
			files = append(files, p)
		}
		return nil
	})
	if len(files) < 100 {
		t.Fatalf("only %d corpus files", len(files))
	}
	e, _ := NewEngine(nil, DefaultLimits)
	missed := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := e.newScan()
		s.visited = map[string]bool{}
		if err := s.message(bytes.NewReader(data), "", 0); err != nil {
			continue // not a message (a bare part, a header-only file)
		}
		for _, m := range attachmentName.FindAllSubmatch(data, -1) {
			name := string(m[1])
			found := false
			for w := range s.visited {
				if strings.Contains(w, "attachment:"+name) {
					found = true
				}
			}
			if !found {
				missed++
				t.Errorf("%s: attachment %s not visited (visited %v)", f, name, s.visited)
			}
		}
	}
	if missed > 0 {
		t.Logf("%d attachments missed", missed)
	}
}

// TestBareCRMessage: a message with bare CR line ends has no blank line to
// end its header; its text is read all the same.
func TestBareCRMessage(t *testing.T) {
	msg := strings.ReplaceAll(hdr+"Content-Type: text/plain\r\n\r\nPatient NHS number 943 476 5919\r\n", "\r\n", "\r")
	if r := scanMsg(t, msg); !has(r, NHS, "") {
		t.Fatalf("%s", findings(r))
	}
}
