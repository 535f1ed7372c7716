package mime

import (
	"net/textproto"
	"slices"
	"strings"
	"testing"
)

// TestParseContentType: values that are not plain RFC 2045 are read every
// plausible way and flagged, so the walk reads the body under each
// candidate (the cases of issue 13 that passed DLP clean).
func TestParseContentType(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in       string
		mt       string
		param    string
		want     []string // candidates of param, in any order; nil: none
		odd      bool
		wantNone bool
	}{
		{in: `multipart/mixed; boundary="b1"`, mt: "multipart/mixed", param: "boundary", want: []string{"b1"}},
		{in: `text/plain; charset=utf-8`, mt: "text/plain", param: "charset", want: []string{"utf-8"}},
		{in: `multipart/mixed; ()boundary=b1`, mt: "multipart/mixed", param: "boundary", want: []string{"b1"}, odd: true},
		{in: `multipart/mixed; boundary=b1; boundary=b2`, mt: "multipart/mixed", param: "boundary", want: []string{"b1", "b2"}, odd: true},
		{in: `multipart/mixed; boundary*0=b; boundary*1=1`, mt: "multipart/mixed", param: "boundary", want: []string{"b1"}},
		{in: `application/zip; name*=''nhs.zip`, mt: "application/zip", param: "name", want: []string{"nhs.zip"}},
		{in: `multipart/mixed (comment); boundary="b1"`, mt: "multipart/mixed", param: "boundary", want: []string{"b1"}, odd: true},
		{in: ``, mt: ""},
	} {
		ct := ParseContentType(c.in)
		if ct.MediaType() != c.mt {
			t.Errorf("%q: media type %q, want %q", c.in, ct.MediaType(), c.mt)
		}
		if c.param != "" {
			got := ct.Params[c.param]
			for _, w := range c.want {
				if !slices.Contains(got, w) {
					t.Errorf("%q: %s candidates %q lack %q", c.in, c.param, got, w)
				}
			}
		}
		if c.odd && !ct.Odd {
			t.Errorf("%q: not flagged odd", c.in)
		}
	}
}

// TestPartName: the name a client shows: the disposition's filename (RFC
// 2231 or RFC 2047 encoded) first, else the type's name.
func TestPartName(t *testing.T) {
	t.Parallel()
	for want, h := range map[string]textproto.MIMEHeader{
		"report.zip":  {"Content-Disposition": {`attachment; filename="report.zip"`}, "Content-Type": {`application/zip; name="other.zip"`}},
		"other.zip":   {"Content-Type": {`application/zip; name="other.zip"`}},
		"café.pdf":    {"Content-Disposition": {`attachment; filename*=utf-8''caf%C3%A9.pdf`}},
		"résumé.docx": {"Content-Disposition": {`attachment; filename="=?utf-8?q?r=C3=A9sum=C3=A9.docx?="`}},
		"":            {"Content-Type": {"text/plain"}},
	} {
		if got := PartName(h, ParseContentType(h.Get("Content-Type"))); got != want {
			t.Errorf("%v: %q, want %q", h, got, want)
		}
	}
}

func TestDecodeHeader(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"=?utf-8?q?caf=C3=A9?= report": "café report",
		"=?iso-8859-1?q?caf=E9?=":      "café",
		"=?windows-1252?q?=80uro?=":    "€uro",
		"plain":                        "plain",
		"=?x-unknown?q?abc?=":          "=?x-unknown?q?abc?=", // kept, never dropped
	} {
		if got := DecodeHeader(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// FuzzParseContentType: any value parses without a panic, and a value Go's
// strict parser refuses is never read as plain.
func FuzzParseContentType(f *testing.F) {
	for _, s := range []string{`multipart/mixed; boundary="b1"`, `multipart/mixed; ()boundary=b1`, `a/b; x*0*=utf-8''%41; x*1=b`, `text/plain; charset="\"`, "m/m; boundary=\"a\\\"b\"", ";;;="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		ct := ParseContentType(v)
		if strings.TrimSpace(v) != "" && len(ct.Types) == 0 && !ct.Odd && len(ct.Params) == 0 {
			return // nothing readable, and nothing claimed
		}
		_ = ct.MediaType()
		_ = PartName(textproto.MIMEHeader{"Content-Disposition": {v}}, ct)
	})
}

// FuzzReadHeader: any header block is read without a panic, and the
// offset where reading stopped is inside the block.
func FuzzReadHeader(f *testing.F) {
	f.Add([]byte("From: a\r\nSubject: x\r\n\r\nbody"))
	f.Add([]byte("Content-Type: multipart/mixed;\r boundary=b\r\n\r\n"))
	f.Add([]byte(" leading continuation\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, off, _ := ReadHeader(b)
		if off < 0 || off > len(b) {
			t.Fatalf("offset %d outside %d bytes", off, len(b))
		}
	})
}
