package smtpd

import (
	"encoding/json"
	"os"
	"testing"
)

// TestSmugglingCorpusInDataReader runs hannob/smtpsmug's malformed
// end-of-data sequences (testdata/smtp, with its README and licence)
// through the DATA reader, once at the start of a line and once inside a
// line, each followed by a smuggled transaction and the real end of data.
// None may end the message (the smuggled MAIL FROM would then run as a
// command, RFC 5321 §4.1.1.4 and §2.3.8); each is refused with the error
// that names it; and the reader stops at the real CRLF.CRLF, so the
// session stays in step. The gateway test sends the same corpus over a
// socket.
func TestSmugglingCorpusInDataReader(t *testing.T) {
	b, err := os.ReadFile("../../testdata/smtp/smuggling-end-of-data-variants.json")
	if err != nil {
		t.Fatal(err)
	}
	var corpus struct {
		Variants map[string]string `json:"variants"`
	}
	if err := json.Unmarshal(b, &corpus); err != nil {
		t.Fatal(err)
	}
	if len(corpus.Variants) < 10 {
		t.Fatalf("corpus has %d variants", len(corpus.Variants))
	}
	// Two more that the corpus leaves out: a bare LF line and a dot line
	// ended by a bare CR.
	corpus.Variants["lf-only-line"] = "\r\n\n"
	corpus.Variants["dot-cr-only"] = "\r\n.\r"
	const smuggled = "MAIL FROM:<ceo@example.gov.uk>\r\nRCPT TO:<staff@example.gov.uk>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n"
	for name, eod := range corpus.Variants {
		for _, prefix := range []string{"Subject: first\r\n\r\nfirst", ""} {
			in := prefix + eod + smuggled
			got, err, rest := readData(in+"NEXT\r\n", 1<<20, 64)
			if err == nil {
				t.Errorf("%s (after %q): accepted, message %q", name, prefix, got)
			} else if err != errBareLF && err != errBareCR && err != errNUL {
				t.Errorf("%s (after %q): refused with %v, want bare LF, bare CR or NUL", name, prefix, err)
			}
			if rest != "NEXT\r\n" {
				t.Errorf("%s (after %q): the data ended early; left for commands: %q", name, prefix, rest)
			}
		}
	}
}
